-- plugmon schema version 6: sketch encoding version 2 (varints) and the choice of backend for the
-- sketch functions (this PL/pgSQL, or the C extension plugmon_sketch when it is installed).
--
-- Encoding version 2 (agent/aggregate/sketch.hpp): "PMDS", u8 version = 2, u8 sub-bucket bits = 6,
-- then unsigned LEB128 varints (7 bits a byte, least significant first, high bit = more; at most
-- 10 bytes, minimal: a multi-byte varint never ends in a zero byte, a 10th byte may only be 0x01):
-- count, sum, min, max, n, then n bins of (index delta, count): the first delta is the index, each
-- later one the index minus the previous one (>= 1); counts >= 1; indices < 3776. The empty sketch
-- is 11 bytes. Every function here reads versions 1 and 2 (mixed in one merge, too) and validates
-- them in full, naming the field at fault (SQLSTATE 22P03 invalid_binary_representation); the
-- merges (sketch_merge, sketch_union, hence _downsample and the writer's upsert) write version 2,
-- byte for byte what the agent's encoder writes.
--
-- The PL/pgSQL implementations keep stable names, plugmon.sketch_*_plpgsql: the fallback and the
-- test oracle of the C extension. The public names route to one backend or the other; see
-- plugmon.sketch_backend() at the end.

-- Where the checks below fail: raises invalid_binary_representation, message 'plugmon sketch: ' ||
-- msg. The messages are part of the interface shared with the C extension (same text, same order).
CREATE FUNCTION plugmon._sketch_fail(msg text) RETURNS void
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    RAISE EXCEPTION 'plugmon sketch: %', msg USING ERRCODE = 'invalid_binary_representation';
END
$$;

-- The prefix and (version 1) header checks, in this order: length of the 6-byte prefix, magic,
-- version, sub-bucket bits; then for version 1: length of the 44-byte header, reserved bytes, n,
-- exact length. Raises at the first failure; returns `b` when they all pass.
CREATE OR REPLACE FUNCTION plugmon._sketch_reject(b bytea) RETURNS bytea
    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
    len constant integer := length(b);
    n bigint;
BEGIN
    IF len < 6 THEN
        PERFORM plugmon._sketch_fail(format('length: %s bytes is shorter than the 6-byte prefix', len));
    END IF;
    IF substring(b FROM 1 FOR 4) <> '\x504d4453'::bytea THEN
        PERFORM plugmon._sketch_fail(format('magic: expected "PMDS", found 0x%s', encode(substring(b FROM 1 FOR 4), 'hex')));
    END IF;
    IF get_byte(b, 4) NOT IN (1, 2) THEN
        PERFORM plugmon._sketch_fail(format('version: %s is not supported (expected 1 or 2)', get_byte(b, 4)));
    END IF;
    IF get_byte(b, 5) <> 6 THEN
        PERFORM plugmon._sketch_fail(format('sub_bucket_bits: %s is not supported (expected 6)', get_byte(b, 5)));
    END IF;
    IF get_byte(b, 4) = 2 THEN
        RETURN b;
    END IF;
    IF len < 44 THEN
        PERFORM plugmon._sketch_fail(format('length: %s bytes is shorter than the 44-byte header', len));
    END IF;
    IF get_byte(b, 6) <> 0 OR get_byte(b, 7) <> 0 THEN
        PERFORM plugmon._sketch_fail('reserved: bytes 6..7 must be zero');
    END IF;
    n := plugmon._sketch_u32(b, 40);
    IF n > 3776 THEN
        PERFORM plugmon._sketch_fail(format('n: %s bins, but there are only 3776 indices', n));
    END IF;
    IF len <> 44 + 12 * n THEN
        PERFORM plugmon._sketch_fail(format('length: %s bytes, expected %s for n = %s bins', len, 44 + 12 * n, n));
    END IF;
    RETURN b;
END
$$;

-- The checks after the bins, shared by both versions: the bin counts (unsigned, summed in
-- numeric) must fit in 64 bits and add up to `count_bits` (a u64 as the bigint with its bits).
CREATE FUNCTION plugmon._sketch_check_total(count_bits bigint, total numeric) RETURNS void
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    IF total > 18446744073709551615 THEN
        PERFORM plugmon._sketch_fail('count: the bin counts overflow 64 bits');
    END IF;
    IF total <> plugmon._u64_value(count_bits) THEN
        PERFORM plugmon._sketch_fail(format('count: %s but the bins sum to %s', plugmon._u64_value(count_bits), total));
    END IF;
END
$$;

-- Decodes and validates a version 2 encoding whose 6-byte prefix is known to be right; returns
-- the same sketch in the version 1 encoding. Checks, in the order of the bytes: each varint
-- (truncated, longer than 64 bits, not minimal), n <= 3776, each bin's delta (>= 1 after the first
-- bin) and index (< 3776), each bin's count (>= 1); then that the encoding ends exactly at the end
-- of the bytes, and the bin total (see _sketch_check_total).
CREATE FUNCTION plugmon._sketch_v2_to_v1(b bytea) RETURNS bytea
    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
    len constant integer := length(b);
    pos integer := 6;
    f integer := 0;        -- the field being read: 0..4 count, sum, min, max, n; then delta, count per bin
    fields integer := 5;
    byte integer;
    shift integer;
    v bigint;
    hdr bigint[] := '{}';
    idx bigint := 0;
    total numeric := 0;
    bins bytea := ''::bytea;
BEGIN
    WHILE f < fields LOOP
        v := 0;
        shift := 0;
        LOOP
            IF pos >= len THEN
                PERFORM plugmon._sketch_fail(format('%s: truncated varint', plugmon._sketch_v2_field(f)));
            END IF;
            byte := get_byte(b, pos);
            pos := pos + 1;
            IF shift = 63 AND byte > 1 THEN
                PERFORM plugmon._sketch_fail(format('%s: varint exceeds 64 bits', plugmon._sketch_v2_field(f)));
            END IF;
            v := v | ((byte & 127)::bigint << shift);
            EXIT WHEN byte < 128;
            shift := shift + 7;
        END LOOP;
        IF byte = 0 AND shift > 0 THEN
            PERFORM plugmon._sketch_fail(format('%s: non-canonical varint (a zero last byte)', plugmon._sketch_v2_field(f)));
        END IF;
        IF f < 5 THEN
            hdr := hdr || v;
            IF f = 4 THEN
                IF v < 0 OR v > 3776 THEN
                    PERFORM plugmon._sketch_fail(format('n: %s bins, but there are only 3776 indices', plugmon._u64_value(v)));
                END IF;
                fields := 5 + 2 * v::integer;
            END IF;
        ELSIF f % 2 = 1 THEN  -- index delta
            IF f > 5 AND v = 0 THEN
                PERFORM plugmon._sketch_fail(format('%s: zero delta (indices must increase)', plugmon._sketch_v2_field(f)));
            END IF;
            IF v < 0 OR v >= 3776 - idx THEN
                PERFORM plugmon._sketch_fail(format('%s: %s is out of range (limit 3776)', plugmon._sketch_v2_field(f),
                                                    plugmon._u64_value(v) + idx));
            END IF;
            idx := idx + v;
        ELSE  -- bin count
            IF v = 0 THEN
                PERFORM plugmon._sketch_fail(format('%s: zero (only non-empty bins are encoded)', plugmon._sketch_v2_field(f)));
            END IF;
            total := total + CASE WHEN v < 0 THEN v + 18446744073709551616 ELSE v END;
            bins := bins || int4send(idx::integer) || int8send(v);
        END IF;
        f := f + 1;
    END LOOP;
    IF pos <> len THEN
        PERFORM plugmon._sketch_fail(format('length: %s bytes, but the encoding ends at byte %s', len, pos));
    END IF;
    PERFORM plugmon._sketch_check_total(hdr[1], total);
    RETURN '\x504d445301060000'::bytea || int8send(hdr[1]) || int8send(hdr[2]) || int8send(hdr[3])
        || int8send(hdr[4]) || int4send(hdr[5]::integer) || bins;
END
$$;

-- The name of varint field `f` of a version 2 encoding (see _sketch_v2_to_v1), for messages.
CREATE FUNCTION plugmon._sketch_v2_field(f integer) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN CASE WHEN f < 5 THEN (ARRAY['count', 'sum', 'min', 'max', 'n'])[f + 1]
                ELSE format('bins[%s].%s', (f - 5) / 2, CASE WHEN f % 2 = 1 THEN 'index' ELSE 'count' END) END;

-- Validates a sketch of either version in full and returns it in the version 1 encoding. Version
-- 1 checks: the header (_sketch_reject), then per bin in order: index < 3776, index greater than
-- the previous one, count >= 1; then the bin total.
CREATE FUNCTION plugmon._sketch_to_v1(b bytea) RETURNS bytea
    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
    n integer;
    bad record;
    total numeric;
BEGIN
    IF length(b) >= 6 AND substring(b FROM 1 FOR 6) = '\x504d44530206'::bytea THEN
        RETURN plugmon._sketch_v2_to_v1(b);
    END IF;
    IF NOT plugmon._sketch_header_ok(b) THEN
        PERFORM plugmon._sketch_reject(b);
    END IF;
    n := plugmon._sketch_u32(b, 40)::integer;
    SELECT x.k, x.i, x.prev, x.c INTO bad
      FROM (SELECT k, plugmon._sketch_u32(b, 44 + 12 * k) AS i,
                   lag(plugmon._sketch_u32(b, 44 + 12 * k)) OVER (ORDER BY k) AS prev,
                   plugmon._sketch_u64(b, 48 + 12 * k) AS c
              FROM generate_series(0, n - 1) AS k) AS x
     WHERE x.i >= 3776 OR x.i <= x.prev OR x.c = 0
     ORDER BY x.k LIMIT 1;
    IF FOUND THEN
        IF bad.i >= 3776 THEN
            PERFORM plugmon._sketch_fail(format('bins[%s].index: %s is out of range (limit 3776)', bad.k, bad.i));
        ELSIF bad.i <= bad.prev THEN
            PERFORM plugmon._sketch_fail(format('bins[%s].index: %s does not increase (previous %s)', bad.k, bad.i, bad.prev));
        ELSE
            PERFORM plugmon._sketch_fail(format('bins[%s].count: zero (only non-empty bins are encoded)', bad.k));
        END IF;
    END IF;
    SELECT coalesce(sum(plugmon._u64_value(plugmon._sketch_u64(b, 48 + 12 * k))), 0) INTO total
      FROM generate_series(0, n - 1) AS k;
    PERFORM plugmon._sketch_check_total(plugmon._sketch_u64(b, 8), total);
    RETURN b;
END
$$;

-- The canonical unsigned LEB128 encoding of the u64 whose bits `v` holds (1 to 10 bytes).
CREATE FUNCTION plugmon._sketch_varint(v bigint) RETURNS bytea
    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
    out bytea := ''::bytea;
BEGIN
    WHILE v < 0 OR v >= 128 LOOP
        out := out || set_byte('\x00'::bytea, 0, ((v & 127) | 128)::integer);
        v := (v >> 7) & 144115188075855871;  -- a logical shift: 2^57 - 1
    END LOOP;
    RETURN out || set_byte('\x00'::bytea, 0, v::integer);
END
$$;

-- Merges sketches of either version (NULL elements are skipped) into one version 2 encoding, byte
-- for byte what dd_sketch::merge followed by the agent's encoder produces: bins added per index,
-- counts added, the sum added and saturated at 2^64 - 1, min and max of the non-empty inputs.
-- NULL when every element is NULL; the empty encoding when every input is empty. Raises on the
-- first malformed input, in array order (see _sketch_to_v1), and when the merged count exceeds
-- 2^64 - 1.
CREATE OR REPLACE FUNCTION plugmon._sketch_merge_array(sketches bytea[]) RETURNS bytea
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    sign_bit constant bigint := -9223372036854775808;
    v1s bytea[];
    total numeric;
    sum_ns numeric;
    min_bits bigint;
    max_bits bigint;
    nbins bigint;
    bins bytea;
BEGIN
    IF sketches IS NULL THEN
        RETURN NULL;
    END IF;
    -- Version 1 inputs are checked set-based (one pass over all their bins, much faster than one
    -- _sketch_to_v1 call each; a count with the top bit set fails it, being negative as bigint);
    -- on any failure the exact, ordered checks raise the first error.
    IF EXISTS (SELECT FROM unnest(sketches) AS s
                WHERE s IS NOT NULL AND substring(s FROM 1 FOR 6) <> '\x504d44530206'::bytea
                  AND (NOT plugmon._sketch_header_ok(s) OR (plugmon._sketch_u32(s, 40) = 0 AND plugmon._sketch_u64(s, 8) <> 0)))
       OR EXISTS (SELECT FROM (SELECT max(plugmon._sketch_u64(u.s, 8)) AS total, sum(r.c) AS bins,
                                      bool_and(r.i < '\x00000ec0'::bytea AND (r.k = 0 OR r.i > r.prev) AND r.c > 0) AS ok
                                 FROM unnest(sketches) WITH ORDINALITY AS u (s, o)
                                      CROSS JOIN LATERAL generate_series(0, plugmon._sketch_u32(u.s, 40)::integer - 1) AS k
                                      CROSS JOIN LATERAL (SELECT k, substring(u.s FROM 45 + 12 * k FOR 4) AS i,
                                                                 substring(u.s FROM 33 + 12 * k FOR 4) AS prev,
                                                                 plugmon._sketch_u64(u.s, 48 + 12 * k) AS c) AS r
                                WHERE u.s IS NOT NULL AND substring(u.s FROM 1 FOR 6) <> '\x504d44530206'::bytea
                                GROUP BY u.o) AS g
                   WHERE NOT g.ok OR g.bins <> g.total) THEN
        PERFORM plugmon._sketch_to_v1(u.s) FROM unnest(sketches) AS u (s) WHERE u.s IS NOT NULL;
    END IF;
    v1s := ARRAY(SELECT CASE WHEN substring(u.s FROM 1 FOR 6) = '\x504d44530206'::bytea
                             THEN plugmon._sketch_v2_to_v1(u.s) ELSE u.s END
                   FROM unnest(sketches) WITH ORDINALITY AS u (s, o)
                  WHERE u.s IS NOT NULL ORDER BY u.o);
    IF cardinality(v1s) = 0 THEN
        RETURN NULL;
    END IF;
    -- min and max compare as unsigned: flipping the sign bit maps unsigned order onto signed order.
    SELECT sum(plugmon._u64_value(plugmon._sketch_u64(s, 8))), sum(plugmon._u64_value(plugmon._sketch_u64(s, 16))),
           min(plugmon._sketch_u64(s, 24) # sign_bit) FILTER (WHERE plugmon._sketch_u64(s, 8) <> 0) # sign_bit,
           max(plugmon._sketch_u64(s, 32) # sign_bit) FILTER (WHERE plugmon._sketch_u64(s, 8) <> 0) # sign_bit
      INTO total, sum_ns, min_bits, max_bits
      FROM unnest(v1s) AS s;
    IF total > 18446744073709551615 THEN
        PERFORM plugmon._sketch_fail('count: the merged counts overflow 64 bits');
    END IF;
    IF total = 0 THEN
        RETURN '\x504d445302060000000000'::bytea;
    END IF;
    -- Identical 12-byte bin records (same index, same count: common, counts are small) are
    -- counted first and decoded once; the 4 big-endian index bytes group and sort as the index.
    SELECT count(*), string_agg(plugmon._sketch_varint(h.i - h.prev) || plugmon._sketch_varint(plugmon._u64_bits(h.c)),
                                ''::bytea ORDER BY h.i)
      INTO nbins, bins
      FROM (SELECT g.i, g.c, lag(g.i, 1, 0::bigint) OVER (ORDER BY g.i) AS prev
              FROM (SELECT plugmon._sketch_u32(substring(r.record FROM 1 FOR 4), 0) AS i,
                           sum(plugmon._u64_value(plugmon._sketch_u64(r.record, 4)) * r.times) AS c
                      FROM (SELECT substring(s FROM 45 + 12 * k FOR 12) AS record, count(*) AS times
                              FROM unnest(v1s) AS s
                                   CROSS JOIN LATERAL generate_series(0, plugmon._sketch_u32(s, 40)::integer - 1) AS k
                             GROUP BY 1) AS r
                     GROUP BY substring(r.record FROM 1 FOR 4)) AS g) AS h;
    RETURN '\x504d44530206'::bytea
        || plugmon._sketch_varint(plugmon._u64_bits(total))
        || plugmon._sketch_varint(plugmon._u64_bits(least(sum_ns, 18446744073709551615)))
        || plugmon._sketch_varint(min_bits)
        || plugmon._sketch_varint(max_bits)
        || plugmon._sketch_varint(nbins)
        || bins;
END
$$;

-- The PL/pgSQL implementations under stable names: the fallback, and the oracle the C extension
-- is tested against. Same contracts as the public names below.
CREATE AGGREGATE plugmon.sketch_merge_plpgsql(bytea) (
    SFUNC = array_append,
    STYPE = bytea[],
    FINALFUNC = plugmon._sketch_merge_array,
    COMBINEFUNC = array_cat,
    PARALLEL = SAFE
);

CREATE FUNCTION plugmon.sketch_union_plpgsql(a bytea, b bytea) RETURNS bytea
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN plugmon._sketch_merge_array(ARRAY[a, b]);

CREATE FUNCTION plugmon.sketch_quantiles_plpgsql(sketch bytea, qs double precision[]) RETURNS bigint[]
    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
    v1 constant bytea := plugmon._sketch_to_v1(sketch);
    total constant bigint := plugmon._sketch_u64(v1, 8);
    min_bits constant bigint := plugmon._sketch_u64(v1, 24);
    max_bits constant bigint := plugmon._sketch_u64(v1, 32);
    result bigint[] := '{}';
    q double precision;
    r double precision;
    rank numeric;
    seen numeric;
    pos integer;
BEGIN
    FOREACH q IN ARRAY qs LOOP
        IF q IS NULL THEN
            result := result || NULL::bigint;
        ELSIF total = 0 THEN
            result := result || 0::bigint;
        ELSIF q = 'NaN'::double precision OR q <= 0 THEN  -- NaN sorts above every number in SQL
            result := result || min_bits;
        ELSIF q >= 1 THEN
            result := result || max_bits;
        ELSE
            -- rank = floor(q * (count - 1)) with the product in double precision, as the agent.
            r := q * plugmon._u64_value(total - 1)::double precision;
            rank := least(plugmon._u64_value(total - 1), floor(r::numeric));
            seen := 0;
            pos := 0;
            LOOP
                seen := seen + plugmon._u64_value(plugmon._sketch_u64(v1, 48 + 12 * pos));
                EXIT WHEN seen > rank;
                pos := pos + 1;
            END LOOP;
            result := result || plugmon._u64_bits(
                greatest(plugmon._u64_value(min_bits),
                         least(plugmon._u64_value(max_bits),
                               plugmon._sketch_value_of(plugmon._sketch_u32(v1, 44 + 12 * pos)::integer))));
        END IF;
    END LOOP;
    RETURN result;
END
$$;

CREATE FUNCTION plugmon.sketch_quantile_plpgsql(sketch bytea, q double precision) RETURNS bigint
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN (plugmon.sketch_quantiles_plpgsql(sketch, ARRAY[q]))[1];

CREATE FUNCTION plugmon.sketch_count_plpgsql(sketch bytea) RETURNS bigint
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN plugmon._sketch_u64(plugmon._sketch_to_v1(sketch), 8);

-- Points the public sketch functions at a backend and returns the one in use:
--   'c'       the C extension plugmon_sketch (must be installed in this database);
--   'plpgsql' the PL/pgSQL implementations above;
--   'auto'    installs plugmon_sketch (CREATE EXTENSION) when the server offers it and the role may,
--             then 'c' if that works, else 'plpgsql' (with a NOTICE saying why); never raises for
--             want of the extension;
--   NULL      changes nothing.
-- The public names keep their signatures; scalar ones become SQL wrappers that the planner
-- inlines, the aggregate is replaced in place. The caller must own the plugmon functions (the
-- agent's role does). Before DROP EXTENSION plugmon_sketch, call sketch_backend('plpgsql'): the
-- public functions depend on the extension's while they use it.
CREATE FUNCTION plugmon.sketch_backend(wanted text DEFAULT NULL) RETURNS text
    LANGUAGE plpgsql AS $$
DECLARE
    installed boolean := EXISTS (SELECT FROM pg_extension WHERE extname = 'plugmon_sketch');
    impl text;
    agg text;
BEGIN
    IF wanted = 'auto' THEN
        IF NOT installed AND EXISTS (SELECT FROM pg_available_extensions WHERE name = 'plugmon_sketch') THEN
            BEGIN
                CREATE EXTENSION IF NOT EXISTS plugmon_sketch;
                installed := true;
            EXCEPTION WHEN OTHERS THEN
                RAISE NOTICE 'plugmon: the sketch extension plugmon_sketch is available but could not be installed: %', SQLERRM;
            END;
        END IF;
        IF installed THEN
            BEGIN
                RETURN plugmon.sketch_backend('c');
            EXCEPTION WHEN OTHERS THEN
                RAISE NOTICE 'plugmon: the sketch extension plugmon_sketch is installed but cannot be used: %', SQLERRM;
            END;
        END IF;
        wanted := 'plpgsql';
    END IF;
    IF wanted = 'c' THEN
        IF NOT installed THEN
            RAISE EXCEPTION 'plugmon: the sketch extension plugmon_sketch is not installed in this database'
                USING HINT = 'CREATE EXTENSION plugmon_sketch (see agent/store/extension), or use sketch_backend(''plpgsql'')';
        END IF;
        impl := 'plugmon_sketch.%s';
        agg := 'SFUNC = plugmon_sketch.merge_trans, STYPE = bytea, SSPACE = 4096,
                FINALFUNC = plugmon_sketch.merge_final, COMBINEFUNC = plugmon_sketch.merge_combine, PARALLEL = SAFE';
    ELSIF wanted = 'plpgsql' THEN
        impl := 'plugmon.%s_plpgsql';
        agg := 'SFUNC = array_append, STYPE = bytea[], FINALFUNC = plugmon._sketch_merge_array,
                COMBINEFUNC = array_cat, PARALLEL = SAFE';
    ELSIF wanted IS NOT NULL THEN
        RAISE EXCEPTION 'plugmon.sketch_backend: % is not a backend (c, plpgsql, auto)', wanted;
    END IF;
    IF wanted IS NOT NULL THEN
        EXECUTE format('CREATE OR REPLACE AGGREGATE plugmon.sketch_merge(bytea) (%s)', agg);
        EXECUTE format('CREATE OR REPLACE FUNCTION plugmon.sketch_union(a bytea, b bytea) RETURNS bytea
                            LANGUAGE sql IMMUTABLE PARALLEL SAFE RETURN %s(a, b)', format(impl, 'sketch_union'));
        EXECUTE format('CREATE OR REPLACE FUNCTION plugmon.sketch_quantiles(sketch bytea, qs double precision[]) RETURNS bigint[]
                            LANGUAGE sql IMMUTABLE PARALLEL SAFE RETURN %s(sketch, qs)', format(impl, 'sketch_quantiles'));
        EXECUTE format('CREATE OR REPLACE FUNCTION plugmon.sketch_quantile(sketch bytea, q double precision) RETURNS bigint
                            LANGUAGE sql IMMUTABLE PARALLEL SAFE RETURN %s(sketch, q)', format(impl, 'sketch_quantile'));
        EXECUTE format('CREATE OR REPLACE FUNCTION plugmon.sketch_count(sketch bytea) RETURNS bigint
                            LANGUAGE sql IMMUTABLE PARALLEL SAFE RETURN %s(sketch)', format(impl, 'sketch_count'));
    END IF;
    RETURN CASE WHEN (SELECT a.aggtransfn::regproc::text FROM pg_aggregate AS a
                       WHERE a.aggfnoid = 'plugmon.sketch_merge(bytea)'::regprocedure) = 'array_append'
                THEN 'plpgsql' ELSE 'c' END;
END
$$;
COMMENT ON FUNCTION plugmon.sketch_backend(text) IS
    'Routes plugmon.sketch_* to the C extension plugmon_sketch (''c''), to PL/pgSQL (''plpgsql'') or to the best available (''auto''); returns the backend in use';

-- Start on PL/pgSQL (every public function now reads version 2), then take the extension if the
-- server has it.
SELECT plugmon.sketch_backend('plpgsql');
SELECT plugmon.sketch_backend('auto');

COMMENT ON AGGREGATE plugmon.sketch_merge(bytea) IS
    'Merge of the non-NULL DDSketches (encoding 1 or 2) in the group, in encoding 2, byte-identical to the agent''s dd_sketch merge + encode; NULL when none';
COMMENT ON COLUMN plugmon.query_rollups.sketch IS
    'DDSketch of the durations in ns, encoding version 1 or 2 (agent/aggregate/sketch.hpp); merge with plugmon.sketch_merge()';
