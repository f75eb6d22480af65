"""Settings of the negotiation service (env prefix ``PARLEY_NEGOTIATION_``)."""

from __future__ import annotations

from decimal import Decimal
from functools import lru_cache

from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from shared.settings import DEV_AUTH_SECRET, MIN_SECRET_BYTES, CommonSettings

#: the development secret (the shared one: one token works on every API)
PLACEHOLDER_SECRET = DEV_AUTH_SECRET


class RoleLimit(BaseModel):
    """What one role may offer on its own; ``None`` means no limit."""

    max_concession: Decimal | None = Field(
        None, description="Largest total monetary concession (CNY) the role may offer."
    )
    max_waiver_pct: Decimal | None = Field(
        None, description="Largest fee/penalty waiver, as a percentage of the fee."
    )
    max_plan_months: int | None = Field(None, description="Longest instalment plan in months.")
    max_deferral_months: int | None = Field(None, description="Longest deferral in months.")
    max_plan_over_balance: Decimal | None = Field(
        None, description="How far (CNY) an instalment plan may exceed the disputed balance plus stated costs.")


def default_authority() -> dict[str, RoleLimit]:
    """Return the default authority limits per role (agent < team_lead < manager < committee)."""
    return {
        "agent": RoleLimit(
            max_concession=Decimal("2000"), max_waiver_pct=Decimal("50"),
            max_plan_months=24, max_deferral_months=3, max_plan_over_balance=Decimal("0"),
        ),
        "team_lead": RoleLimit(
            max_concession=Decimal("10000"), max_waiver_pct=Decimal("80"),
            max_plan_months=36, max_deferral_months=6, max_plan_over_balance=Decimal("0"),
        ),
        "manager": RoleLimit(
            max_concession=Decimal("50000"), max_waiver_pct=Decimal("100"),
            max_plan_months=60, max_deferral_months=12,
        ),
        "committee": RoleLimit(),
    }


class Settings(CommonSettings):
    """Everything the negotiation worker and API read from the environment."""

    model_config = SettingsConfigDict(
        env_prefix="PARLEY_NEGOTIATION_", env_nested_delimiter="__", extra="ignore"
    )

    environment: str = Field(
        "development",
        validation_alias="PARLEY_ENVIRONMENT",
        description="development, test or production (PARLEY_ENVIRONMENT).",
    )
    # Older names of the shared token settings (PARLEY_AUTH_SECRET, _ISSUER, _AUDIENCE): when
    # set they override them for negotiation; otherwise they show the shared values.
    jwt_secret: str = Field(
        PLACEHOLDER_SECRET,
        description="HS256 secret of bearer tokens (PARLEY_AUTH_SECRET for every API; this "
        "older variable overrides it here); must be set in production.",
    )
    jwt_issuer: str = Field("parley", description="Issuer (iss); PARLEY_AUTH_ISSUER for every API.")
    jwt_audience: str = Field("parley", description="Audience (aud); PARLEY_AUTH_AUDIENCE for every API.")
    default_team: str = Field("unassigned", description="Team of a case no agent could take.")
    default_negotiation_days: int = Field(
        15, ge=1, description="Deadline when no regulatory deadline came with the case (days)."
    )
    escalate_before_hours: float = Field(
        24, ge=0, description="Escalate to mediation when the deadline is this near without agreement."
    )
    sweep_interval_s: float = Field(
        5.0, gt=0, description="How often the worker relays outboxes and checks deadlines."
    )
    progress_notice_days: int = Field(
        7, ge=0, le=366,
        description="Send the customer a progress notice every this many days while the case is open (0: never).",
    )
    progress_sweep_interval_s: float = Field(
        300, gt=0, description="How often the worker looks for cases whose progress notice is due.")
    authority: dict[str, RoleLimit] = Field(
        default_factory=default_authority,
        description="Authority limits per role, JSON (PARLEY_NEGOTIATION_AUTHORITY).",
    )
    fairness_min_peers: int = Field(
        20, ge=5, description="Fewest similar settlements a comparison may rest on before widening."
    )
    fairness_seed_per_cell: int = Field(
        24, ge=0, description="Seeded reference settlements per (category, band, hardship) cell."
    )
    shared_data: str | None = Field(
        None,
        validation_alias="PARLEY_SHARED_DATA",
        description="Folder of the shared data (default ../shared/data from the repo root).",
    )
    institution_name_zh: str = Field(
        "Parley 消费金融", description="The institution's name as the customer sees it (agreements, the view)."
    )
    institution_name_en: str = Field("Parley Consumer Finance", description="The institution's name in English.")
    contact_zh: str = Field(
        "您可以在本页直接给负责您案件的专员留言，也可以拨打我们的客服热线。",
        description="Where the customer can reach us, shown in the customer's view (zh-CN).",
    )
    contact_en: str = Field(
        "You can write to the person handling your case on this page, or call our customer service line.",
        description="Where the customer can reach us, shown in the customer's view (English).",
    )
    public_base_url: str = Field(
        "", description="Prefix of links put in events (e.g. https://negotiation.example)."
    )

    @model_validator(mode="after")
    def _one_token_setting(self) -> Settings:
        """Fold the older PARLEY_NEGOTIATION_JWT_* variables into ``auth``, and mirror it."""
        older = {"jwt_secret": "secret", "jwt_issuer": "issuer", "jwt_audience": "audience"}
        update = {new: getattr(self, old) for old, new in older.items() if old in self.model_fields_set}
        if update:
            if "secret" in update:
                update["secret"] = SecretStr(update["secret"])
            self.auth = self.auth.model_copy(update=update)
        self.jwt_secret = self.auth.secret.get_secret_value()
        self.jwt_issuer, self.jwt_audience = self.auth.issuer, self.auth.audience
        return self

    @model_validator(mode="after")
    def _refuse_placeholder_secret(self) -> Settings:
        if self.environment not in {"development", "test"} and self.auth.algorithm == "HS256":
            if self.jwt_secret == PLACEHOLDER_SECRET or len(self.jwt_secret.encode()) < MIN_SECRET_BYTES:
                raise ValueError(
                    "PARLEY_AUTH_SECRET (or PARLEY_NEGOTIATION_JWT_SECRET) must be set "
                    f"({MIN_SECRET_BYTES}+ bytes) outside development and test"
                )
        missing = {"agent", "team_lead", "manager", "committee"} - set(self.authority)
        if missing:
            raise ValueError(f"authority lacks limits for roles: {', '.join(sorted(missing))}")
        return self


@lru_cache
def get_settings() -> Settings:
    """Return the settings, read once from the environment."""
    return Settings()
