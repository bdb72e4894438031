-- crm extension install script, assembled at build time from src/sql/NN_*.sql.
\echo Use "CREATE EXTENSION crm" to load this file. \quit
