-- PostgreSQL drops the foreign keys of the catalog index tables in this
-- version. SQLite keeps them: it checks them cheaply, and removing one
-- means rebuilding the table. Nothing changes here.
SELECT 1;
