"""The control plane's tables: experiments, pipelines and versions, recurring runs, resources.

Runs gain the KFP API's fields (namespace, experiment, storage state, pipeline reference, recurring
run), who executes them (origin, engine instance) and the resource that started them (owner).

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def run_columns() -> tuple[sa.Column, ...]:
    """The columns runs gain (new objects each call: a Column belongs to one table)."""
    return (
        sa.Column("namespace", sa.String(253), nullable=False, server_default=""),
        sa.Column("experiment_id", sa.String(64), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("storage_state", sa.String(16), nullable=False, server_default="AVAILABLE"),
        sa.Column("pipeline_id", sa.String(64), nullable=True),
        sa.Column("pipeline_version_id", sa.String(64), nullable=True),
        sa.Column("recurring_run_id", sa.String(64), nullable=True),
        sa.Column("scheduled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("service_account", sa.String(256), nullable=True),
        sa.Column("origin", sa.String(16), nullable=False, server_default="embedded"),
        sa.Column("engine_instance", sa.String(256), nullable=True),
        sa.Column("owner", sa.String(256), nullable=True),
    )


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        for column in run_columns():
            batch.add_column(column)
    op.create_index("ix_runs_experiment_id", "runs", ["experiment_id"])
    op.create_index("ix_runs_recurring_run_id", "runs", ["recurring_run_id"])
    op.create_index("ix_runs_owner", "runs", ["owner"])
    op.create_index("ix_runs_namespace_created_at", "runs", ["namespace", "created_at"])

    op.create_table(
        "experiments",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("namespace", sa.String(253), nullable=False),
        sa.Column("display_name", sa.String(512), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("storage_state", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_run_created_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_experiments"),
        sa.UniqueConstraint("namespace", "display_name", name="uq_experiments_namespace_display_name"),
    )
    op.create_index("ix_experiments_created_at", "experiments", ["created_at"])

    op.create_table(
        "pipelines",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("namespace", sa.String(253), nullable=False),
        sa.Column("name", sa.String(512), nullable=False),
        sa.Column("display_name", sa.String(512), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_pipelines"),
        sa.UniqueConstraint("namespace", "name", name="uq_pipelines_namespace_name"),
    )
    op.create_index("ix_pipelines_created_at", "pipelines", ["created_at"])

    op.create_table(
        "pipeline_versions",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("pipeline_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(512), nullable=False),
        sa.Column("display_name", sa.String(512), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("pipeline_spec", sa.JSON(), nullable=False),
        sa.Column("platform_spec", sa.JSON(), nullable=True),
        sa.Column("code_source_url", sa.String(2048), nullable=True),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_pipeline_versions"),
        sa.ForeignKeyConstraint(
            ["pipeline_id"], ["pipelines.id"], name="fk_pipeline_versions_pipeline_id_pipelines", ondelete="CASCADE"
        ),
        sa.UniqueConstraint("pipeline_id", "name", name="uq_pipeline_versions_pipeline_id_name"),
    )
    op.create_index("ix_pipeline_versions_pipeline_id", "pipeline_versions", ["pipeline_id"])
    op.create_index("ix_pipeline_versions_created_at", "pipeline_versions", ["created_at"])

    op.create_table(
        "recurring_runs",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("namespace", sa.String(253), nullable=False),
        sa.Column("display_name", sa.String(512), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("experiment_id", sa.String(64), nullable=True),
        sa.Column("pipeline_id", sa.String(64), nullable=True),
        sa.Column("pipeline_version_id", sa.String(64), nullable=True),
        sa.Column("pipeline_spec", sa.JSON(), nullable=True),
        sa.Column("platform_spec", sa.JSON(), nullable=True),
        sa.Column("runtime_config", sa.JSON(), nullable=False),
        sa.Column("service_account", sa.String(256), nullable=True),
        sa.Column("max_concurrency", sa.Integer(), nullable=False),
        sa.Column("trigger", sa.JSON(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("no_catchup", sa.Boolean(), nullable=False),
        sa.Column("last_scheduled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_recurring_runs"),
    )
    op.create_index("ix_recurring_runs_experiment_id", "recurring_runs", ["experiment_id"])
    op.create_index("ix_recurring_runs_created_at", "recurring_runs", ["created_at"])

    op.create_table(
        "resources",
        sa.Column("uid", sa.String(64), nullable=False),
        sa.Column("api_version", sa.String(256), nullable=False),
        sa.Column("kind", sa.String(128), nullable=False),
        sa.Column("namespace", sa.String(253), nullable=False),
        sa.Column("name", sa.String(253), nullable=False),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("annotations", sa.JSON(), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("status", sa.JSON(), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("resource_version", sa.Integer(), nullable=False),
        sa.Column("deletion_requested_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("uid", name="pk_resources"),
        sa.UniqueConstraint("kind", "namespace", "name", name="uq_resources_kind_namespace_name"),
    )

    op.create_table(
        "resource_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("resource_uid", sa.String(64), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(128), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_resource_events"),
        sa.ForeignKeyConstraint(
            ["resource_uid"], ["resources.uid"], name="fk_resource_events_resource_uid_resources", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_resource_events_resource_uid", "resource_events", ["resource_uid"])


def downgrade() -> None:
    for table in ("resource_events", "resources", "recurring_runs", "pipeline_versions", "pipelines", "experiments"):
        op.drop_table(table)
    op.drop_index("ix_runs_namespace_created_at", "runs")
    op.drop_index("ix_runs_recurring_run_id", "runs")
    op.drop_index("ix_runs_owner", "runs")
    op.drop_index("ix_runs_experiment_id", "runs")
    with op.batch_alter_table("runs") as batch:
        for column in reversed(run_columns()):
            batch.drop_column(column.name)
