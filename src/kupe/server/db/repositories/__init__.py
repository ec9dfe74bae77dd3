"""Every query Kupe runs on its own tables, one module per table on a shared base."""
