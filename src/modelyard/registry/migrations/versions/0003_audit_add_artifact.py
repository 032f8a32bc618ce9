"""Allow the ``add_artifact`` audit action (an artifact attached to an existing version).

Revision ID: 0003
Revises: 0002
Create Date: 2025-02-10
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_NAME = "ck_modelyard_audit_action"
_BEFORE = "action IN ('register', 'promote', 'rollback', 'alias_delete')"
_AFTER = "action IN ('register', 'promote', 'rollback', 'alias_delete', 'add_artifact')"


def _replace_check(condition: str) -> None:
    # SQLite cannot alter a constraint: batch mode copies the table (indexes included).
    with op.batch_alter_table("modelyard_audit", recreate="auto") as batch:
        batch.drop_constraint(_NAME, type_="check")
        batch.create_check_constraint(_NAME, condition)


def upgrade() -> None:
    """Accept ``add_artifact`` in the audit log."""
    _replace_check(_AFTER)


def downgrade() -> None:
    """Refuse ``add_artifact`` again (delete such audit rows first)."""
    op.execute("DELETE FROM modelyard_audit WHERE action = 'add_artifact'")
    _replace_check(_BEFORE)
