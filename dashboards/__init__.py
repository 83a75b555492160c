"""ClickHouse: the decision history's tables (ddl.sql), its queries, and the store."""
