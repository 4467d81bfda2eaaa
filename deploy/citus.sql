-- plugmon on Citus: distributes the plugmon schema across a Citus cluster, every table on `host`.
--
-- plugmon's schema is Citus-ready as it stands: every primary key and unique constraint of the
-- tables below contains `host` (and the partition key where the table is partitioned), no table
-- takes a default from a sequence, and the sketch aggregates have combine functions and are
-- PARALLEL SAFE. tests/agent/store/schema/citus_lint_test.cpp checks all of that on plain
-- PostgreSQL 15, reading its list of tables from the create_distributed_table and
-- create_reference_table calls in this file: add a table here and the test checks it too.
-- Citus itself is not in Debian and is not run by plugmon's tests.
--
-- Why `host` and one colocation group: one agent writes one batch as one transaction (the ledger
-- row in plugmon.write_batches, then its rollups, samples, alerts and audit rows), all for its own
-- host. With every table distributed on host and colocated with the ledger, that transaction
-- touches one shard group on one worker: router execution, no two-phase commit. The hourly
-- downsampling (plugmon.maintain) groups by host as well, so its INSERT … SELECT runs on the
-- workers. Fleet-wide queries (GROUP BY plugin over every host) fan out to all shards;
-- plugmon.sketch_merge has a combine function, so the workers merge their own rows and the
-- coordinator merges one partial result per shard.
--
-- What to run, in this order (a DBA's checklist):
--
--   1. On every node (coordinator and workers): install the Citus package matching the server,
--      add citus to shared_preload_libraries, restart; then in the plugmon database of every node:
--          CREATE EXTENSION citus;
--   2. On the coordinator, register the cluster:
--          SELECT citus_set_coordinator_host('coordinator.example', 5432);
--          SELECT citus_add_node('worker-1.example', 5432);
--          SELECT citus_add_node('worker-2.example', 5432);
--   3. On the coordinator, create the schema with the agent (or let the first agent do it):
--          plugmon-agent migrate --postgres 'postgresql://plugmon@coordinator.example/plugmon'
--      Agents always connect to the coordinator; workers are never addressed directly.
--   4. Stop the agents (they keep writing into their spools and catch up afterwards), then run
--      this file on the coordinator, once:
--          psql -v ON_ERROR_STOP=1 -d plugmon -f deploy/citus.sql
--      Distributing a table copies its existing rows to the shards and locks it meanwhile: on a
--      database that already holds weeks of rows, expect minutes. Then start the agents again.
--   5. Later migrations (a newer agent) run on the coordinator as before: Citus propagates
--      ALTER TABLE, CREATE INDEX and CREATE FUNCTION to the workers.
--
-- Partitions. The time-series tables are range-partitioned (raw tables by UTC day, the _1h tables
-- by UTC month). Keep letting plugmon make and drop them (plugmon.maintain(), run by the agent):
-- a partition created on the coordinator with CREATE TABLE … PARTITION OF a distributed table is
-- distributed and colocated automatically. Do not use Citus's create_time_partitions() or
-- drop_old_time_partitions() on these tables as well: create_time_partitions names partitions its
-- own way, so plugmon, which names a day's partition <table>_pYYYYMMDD, would try to create an
-- overlapping one and fail; drop_old_time_partitions would drop raw days before plugmon has
-- downsampled them. To premake partitions further ahead, call plugmon's own function:
--          SELECT plugmon.ensure_partitions(now(), now() + interval '14 days');
--
-- Optional, columnar storage for old hourly data. Columnar tables refuse UPDATE and ON CONFLICT
-- DO UPDATE, which plugmon.maintain() uses when late rows arrive for a day already downsampled.
-- Only convert monthly _1h partitions older than any row that can still arrive (the agents' spool
-- bound, and at least downsample_after), for example:
--          CALL alter_old_partitions_set_access_method('plugmon.query_rollups_1h',
--                                                      now() - interval '3 months', 'columnar');
--
-- Rebalancing. slow_queries and resource_samples have no primary key (plugmon only inserts into
-- them and drops whole partitions), so move their shards with
--          SELECT rebalance_table_shards(shard_transfer_mode => 'force_logical');
-- which keeps inserts flowing during the move ('auto' refuses tables without a replica identity).
--
-- Local tables. plugmon.schema_migrations (the migration history) stays a plain table on the
-- coordinator. A database upgraded from schema version 1 with hand-written rows in the old
-- plugmon.alerts keeps them as plugmon.alerts_0001 (see migration 4); it is not written by
-- plugmon and stays local too (its id column is a bigserial: do not distribute it).
--
-- Reference tables. plugmon has no dimension tables today: plugin, operation, table and tenant
-- names are stored inline in each row. A future catalog table (plugins, fingerprints) should be
-- made a reference table with SELECT create_reference_table('plugmon.<table>'); foreign keys may
-- then point from distributed tables to it, never from it to a distributed table.
--
-- Functions and aggregates. Citus 11 and later propagate functions created on the coordinator
-- once the citus extension exists; the plugmon functions created before that (step 3 ran before
-- step 1 on an existing database) must be distributed once so the workers have them, for
-- example, for every function and aggregate of the schema:
--          SELECT create_distributed_function(p.oid::regprocedure)
--            FROM pg_proc AS p WHERE p.pronamespace = 'plugmon'::regnamespace;

\set ON_ERROR_STOP on

-- The ledger first: it anchors the colocation group every other table joins.
SELECT create_distributed_table('plugmon.write_batches', 'host', colocate_with => 'none');

-- Query and execution rollups, raw (daily partitions) and hourly (monthly partitions).
SELECT create_distributed_table('plugmon.query_rollups', 'host', colocate_with => 'plugmon.write_batches');
SELECT create_distributed_table('plugmon.query_rollups_1h', 'host', colocate_with => 'plugmon.write_batches');
SELECT create_distributed_table('plugmon.execution_rollups', 'host', colocate_with => 'plugmon.write_batches');
SELECT create_distributed_table('plugmon.execution_rollups_1h', 'host', colocate_with => 'plugmon.write_batches');

-- Sampled slow queries and resource samples (daily partitions, insert-only).
SELECT create_distributed_table('plugmon.slow_queries', 'host', colocate_with => 'plugmon.write_batches');
SELECT create_distributed_table('plugmon.resource_samples', 'host', colocate_with => 'plugmon.write_batches');

-- Alert history and the alerts' current state, written in the same batch transaction.
SELECT create_distributed_table('plugmon.alert_events', 'host', colocate_with => 'plugmon.write_batches');
SELECT create_distributed_table('plugmon.alerts', 'host', colocate_with => 'plugmon.write_batches');

-- The audit trail (mutating API calls and reloads), written in the same batch transaction.
SELECT create_distributed_table('plugmon.audit', 'host', colocate_with => 'plugmon.write_batches');
