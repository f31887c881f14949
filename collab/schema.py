"""The database schema. It is created and changed only by Alembic migrations."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# SQLite autoincrements only an INTEGER PRIMARY KEY.
Seq = BigInteger().with_variant(Integer(), "sqlite")

documents = Table(
    "documents",
    metadata,
    Column("id", String(128), primary_key=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("size_bytes", BigInteger, nullable=False, default=0),
    Column("log_rows", Integer, nullable=False, default=0),
    Column("deleted_at", DateTime(timezone=True), nullable=True),
)

snapshots = Table(
    "snapshots",
    metadata,
    Column("doc_id", String(128), ForeignKey("documents.id", ondelete="CASCADE"), primary_key=True),
    Column("data", LargeBinary, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    # Of ``data``: a room opened from the snapshot alone answers peers before it is
    # built. Null for snapshots written before migration 0003.
    Column("state_vector", LargeBinary, nullable=True),
)

updates = Table(
    "updates",
    metadata,
    Column("seq", Seq, primary_key=True, autoincrement=True),
    Column("doc_id", String(128), ForeignKey("documents.id", ondelete="CASCADE"), nullable=False),
    Column("data", LargeBinary, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_updates_doc_id_seq", "doc_id", "seq"),
)

versions = Table(
    "versions",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("doc_id", String(128), ForeignKey("documents.id", ondelete="CASCADE"), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("label", String(200), nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("data", LargeBinary, nullable=False),
    Index("ix_versions_doc_id_created_at", "doc_id", "created_at"),
)

Index("ix_documents_updated_at", documents.c.updated_at)
