-- plugmon_sketch 1.0: the C implementations of the plugmon sketch functions, in schema plugmon_sketch.
-- Same contracts as plugmon.sketch_*_plpgsql (agent/store/schema/sql/0006_sketch_v2.sql); this
-- script creates objects of its own only, and plugmon.sketch_backend() points plugmon.sketch_* here.
\echo Use "CREATE EXTENSION plugmon_sketch" to load this file. \quit

GRANT USAGE ON SCHEMA @extschema@ TO PUBLIC;

-- The merge state is a bytea (see pm_state in plugmon_sketch.c), not internal: the role that owns
-- the plugmon schema need not be superuser to define plugmon.sketch_merge over these functions,
-- and partial states need no serialization. Every function checks the state it is given.
CREATE FUNCTION @extschema@.merge_trans(bytea, bytea) RETURNS bytea
    AS 'MODULE_PATHNAME', 'pm_merge_trans' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION @extschema@.merge_combine(bytea, bytea) RETURNS bytea
    AS 'MODULE_PATHNAME', 'pm_merge_combine' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION @extschema@.merge_final(bytea) RETURNS bytea
    AS 'MODULE_PATHNAME', 'pm_merge_final' LANGUAGE C IMMUTABLE PARALLEL SAFE;

-- The merge of the non-NULL sketches in the group (encoding 2); NULL when there is none.
CREATE AGGREGATE @extschema@.sketch_merge(bytea) (
    SFUNC = @extschema@.merge_trans,
    STYPE = bytea,
    SSPACE = 4096,
    FINALFUNC = @extschema@.merge_final,
    COMBINEFUNC = @extschema@.merge_combine,
    PARALLEL = SAFE
);

CREATE FUNCTION @extschema@.sketch_union(a bytea, b bytea) RETURNS bytea
    AS 'MODULE_PATHNAME', 'pm_sketch_union' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION @extschema@.sketch_quantiles(sketch bytea, qs double precision[]) RETURNS bigint[]
    AS 'MODULE_PATHNAME', 'pm_sketch_quantiles' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION @extschema@.sketch_quantile(sketch bytea, q double precision) RETURNS bigint
    AS 'MODULE_PATHNAME', 'pm_sketch_quantile' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION @extschema@.sketch_count(sketch bytea) RETURNS bigint
    AS 'MODULE_PATHNAME', 'pm_sketch_count' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
