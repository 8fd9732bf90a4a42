-- mlma install script, assembled from sql/install/*.sql in name order.
-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION mlma" to load this file. \quit
