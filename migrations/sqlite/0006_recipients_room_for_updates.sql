-- Version 6 leaves room in PostgreSQL's recipient pages for in-place updates; SQLite has no such
-- setting, and its schema is unchanged.
select 1;
