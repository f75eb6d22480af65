"""Follow-up (施行与监督, 后续跟踪与评估): carry out agreed settlements, then call the customer back."""
