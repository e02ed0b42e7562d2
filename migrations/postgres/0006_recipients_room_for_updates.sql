-- A recipient's row is rewritten at each of its bounces. Pages left 30% free let PostgreSQL write
-- the new version beside the old one when no indexed column changes (a heap-only update), so that
-- its five indexes are not touched; the setting applies to pages written from now on.
alter table recipients set (fillfactor = 70);
