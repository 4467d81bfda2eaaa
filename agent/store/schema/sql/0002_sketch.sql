-- plugmon schema version 2: decode, merge and query the agent's DDSketch (encoding version 1) in SQL.
--
-- The layout is documented in agent/sketch.hpp: "PMDS", u8 version = 1, u8 sub-bucket bits = 6,
-- u16 0, u64 count, sum, min, max, u32 n, then n x (u32 index, u64 count), all big-endian, bins in
-- increasing index order, non-empty only. The agent's integers are unsigned 64-bit; here a u64 is
-- read as the bigint with the same 64 bits. Where order or arithmetic depends on the sign (min,
-- max, sum, bucket values) the functions work on the unsigned value, so results are bit-identical
-- to the agent's for every input; durations in ns are far below 2^63 anyway.

-- The u64 at byte offset `off` (0-based) of `b`, as the bigint with the same bits. NULL past the end.
CREATE FUNCTION plugmon._sketch_u64(b bytea, off integer) RETURNS bigint
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN CASE WHEN off + 8 <= length(b)
                THEN ('x' || encode(substring(b FROM off + 1 FOR 8), 'hex'))::bit(64)::bigint END;

-- The u32 at byte offset `off` (0-based) of `b` (0 .. 2^32 - 1). NULL past the end.
CREATE FUNCTION plugmon._sketch_u32(b bytea, off integer) RETURNS bigint
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN CASE WHEN off + 4 <= length(b)
                THEN ('x' || encode(substring(b FROM off + 1 FOR 4), 'hex'))::bit(32)::bigint END;

-- The unsigned value of a u64 stored as bigint, and back.
CREATE FUNCTION plugmon._u64_value(v bigint) RETURNS numeric
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN CASE WHEN v < 0 THEN v + 18446744073709551616 ELSE v END;

CREATE FUNCTION plugmon._u64_bits(x numeric) RETURNS bigint
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN CASE WHEN x >= 9223372036854775808 THEN (x - 18446744073709551616)::bigint ELSE x::bigint END;

-- The value that stands for bucket `i` (dd_sketch::value_of: the bucket's midpoint rounded down),
-- unsigned. For i >= 128 with e = (i - 128) / 64 + 7 and sub = (i - 128) % 64 the bucket is
-- [(64 + sub) * 2^(e-6), + 2^(e-6)), so its midpoint rounded down is (129 + 2 sub) * 2^(e-7) - 1.
CREATE FUNCTION plugmon._sketch_value_of(i integer) RETURNS numeric
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN CASE WHEN i < 128 THEN i::numeric
                ELSE (129 + 2 * ((i - 128) % 64))::numeric * (1::bigint << ((i - 128) / 64))::numeric - 1
           END;

-- True when `b` has a valid version-1 header and the length its bin count calls for (the cheap
-- test the set-based functions filter on before they decode anything).
CREATE FUNCTION plugmon._sketch_header_ok(b bytea) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN CASE WHEN length(b) >= 44 AND substring(b FROM 1 FOR 8) = '\x504d445301060000'::bytea
                THEN plugmon._sketch_u32(b, 40) <= 3776
                     AND length(b) = 44 + 12 * plugmon._sketch_u32(b, 40)
                ELSE false END;

-- Raises invalid_binary_representation with a message that names the field at fault, as
-- dd_sketch::decode does; returns `b` if its header is valid after all.
CREATE FUNCTION plugmon._sketch_reject(b bytea) RETURNS bytea
    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
    len constant integer := length(b);
    n bigint;
BEGIN
    IF len < 44 THEN
        RAISE EXCEPTION 'plugmon sketch: length: % bytes is shorter than the 44-byte header', len
            USING ERRCODE = 'invalid_binary_representation';
    END IF;
    IF substring(b FROM 1 FOR 4) <> '\x504d4453'::bytea THEN
        RAISE EXCEPTION 'plugmon sketch: magic: expected "PMDS", found 0x%', encode(substring(b FROM 1 FOR 4), 'hex')
            USING ERRCODE = 'invalid_binary_representation';
    END IF;
    IF get_byte(b, 4) <> 1 THEN
        RAISE EXCEPTION 'plugmon sketch: version: % is not supported (expected 1)', get_byte(b, 4)
            USING ERRCODE = 'invalid_binary_representation';
    END IF;
    IF get_byte(b, 5) <> 6 THEN
        RAISE EXCEPTION 'plugmon sketch: sub_bucket_bits: % is not supported (expected 6)', get_byte(b, 5)
            USING ERRCODE = 'invalid_binary_representation';
    END IF;
    IF get_byte(b, 6) <> 0 OR get_byte(b, 7) <> 0 THEN
        RAISE EXCEPTION 'plugmon sketch: reserved: bytes 6..7 must be zero'
            USING ERRCODE = 'invalid_binary_representation';
    END IF;
    n := plugmon._sketch_u32(b, 40);
    IF n > 3776 THEN
        RAISE EXCEPTION 'plugmon sketch: n: % bins, but there are only 3776 indices', n
            USING ERRCODE = 'invalid_binary_representation';
    END IF;
    IF len <> 44 + 12 * n THEN
        RAISE EXCEPTION 'plugmon sketch: length: % bytes, expected % for n = % bins', len, 44 + 12 * n, n
            USING ERRCODE = 'invalid_binary_representation';
    END IF;
    RETURN b;
END
$$;

-- Returns `b` when its header is valid, else raises (see _sketch_reject). Inlined: no call on the good path.
CREATE FUNCTION plugmon._sketch_check(b bytea) RETURNS bytea
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN CASE WHEN plugmon._sketch_header_ok(b) THEN b ELSE plugmon._sketch_reject(b) END;

-- Merges sketches (NULL elements are skipped) into one version-1 encoding, byte for byte what
-- dd_sketch::merge followed by encode() produces: bins added per index, counts added, the sum
-- added and saturated at 2^64 - 1, min and max of the non-empty inputs. NULL when every element
-- is NULL; the empty encoding when every input is empty. Raises on a malformed input (naming the
-- field), on a bin index out of range and on bin counts that do not add up to the counts.
-- Set-based: all bins of all inputs are decoded by one query and summed per index.
CREATE FUNCTION plugmon._sketch_merge_array(sketches bytea[]) RETURNS bytea
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    sign_bit constant bigint := -9223372036854775808;
    bad bytea;
    inputs bigint;
    total numeric;
    sum_ns numeric;
    min_bits bigint;
    max_bits bigint;
    nbins bigint;
    bin_total numeric;
    in_range boolean;
    bins bytea;
BEGIN
    IF sketches IS NULL THEN
        RETURN NULL;
    END IF;
    SELECT s INTO bad FROM unnest(sketches) AS s
     WHERE s IS NOT NULL AND NOT plugmon._sketch_header_ok(s) LIMIT 1;
    IF FOUND THEN
        PERFORM plugmon._sketch_reject(bad);  -- raises, naming the field
    END IF;

    -- min and max compare as unsigned: flipping the sign bit maps unsigned order onto signed order.
    SELECT count(s), sum(plugmon._sketch_u64(s, 8)), sum(plugmon._u64_value(plugmon._sketch_u64(s, 16))),
           min(plugmon._sketch_u64(s, 24) # sign_bit) FILTER (WHERE plugmon._sketch_u64(s, 8) <> 0) # sign_bit,
           max(plugmon._sketch_u64(s, 32) # sign_bit) FILTER (WHERE plugmon._sketch_u64(s, 8) <> 0) # sign_bit
      INTO inputs, total, sum_ns, min_bits, max_bits
      FROM unnest(sketches) AS s;
    IF inputs = 0 THEN
        RETURN NULL;
    END IF;
    IF total = 0 THEN
        RETURN '\x504d445301060000'::bytea || decode(repeat('00', 36), 'hex');
    END IF;

    -- Bins are summed per index without decoding it: the 4 index bytes are big-endian, so they
    -- sort as bytea in index order and are copied to the output as they are. Identical 12-byte
    -- records (same index, same count: common, counts are small) are counted first and decoded
    -- once, which is most of the cost saved.
    SELECT count(*), sum(g.c), bool_and(g.i < '\x00000ec0'::bytea),
           string_agg(g.i || int8send(g.c::bigint), ''::bytea ORDER BY g.i)
      INTO nbins, bin_total, in_range, bins
      FROM (SELECT substring(r.record FROM 1 FOR 4) AS i,
                   sum(plugmon._sketch_u64(r.record, 4)::numeric * r.times) AS c
              FROM (SELECT substring(s FROM 45 + 12 * k FOR 12) AS record, count(*) AS times
                      FROM unnest(sketches) AS s
                           CROSS JOIN LATERAL generate_series(0, plugmon._sketch_u32(s, 40)::integer - 1) AS k
                     WHERE s IS NOT NULL
                     GROUP BY 1) AS r
             GROUP BY 1) AS g;
    IF NOT in_range THEN
        RAISE EXCEPTION 'plugmon sketch: bins.index: an index is out of range (limit 3776)'
            USING ERRCODE = 'invalid_binary_representation';
    END IF;
    IF bin_total IS DISTINCT FROM total THEN
        RAISE EXCEPTION 'plugmon sketch: count: the counts add up to % but the bins to %', total, coalesce(bin_total, 0)
            USING ERRCODE = 'invalid_binary_representation';
    END IF;
    RETURN '\x504d445301060000'::bytea
        || int8send(total::bigint)
        || int8send(plugmon._u64_bits(least(sum_ns, 18446744073709551615)))
        || int8send(min_bits)
        || int8send(max_bits)
        || int4send(nbins::integer)
        || bins;
END
$$;

-- Aggregate: the merge of every non-NULL sketch in the group (see _sketch_merge_array); NULL when
-- there is none. The transition only collects the inputs (array_append grows its array in place
-- inside an aggregate), the final function merges them all at once.
CREATE AGGREGATE plugmon.sketch_merge(bytea) (
    SFUNC = array_append,
    STYPE = bytea[],
    FINALFUNC = plugmon._sketch_merge_array,
    COMBINEFUNC = array_cat,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE plugmon.sketch_merge(bytea) IS
    'Merge of the non-NULL DDSketches (encoding 1) in the group, byte-identical to the agent''s dd_sketch merge + encode; NULL when none';

-- The merge of two sketches, either of which may be NULL (NULL when both are), for
-- ON CONFLICT ... DO UPDATE SET sketch = plugmon.sketch_union(t.sketch, excluded.sketch).
CREATE FUNCTION plugmon.sketch_union(a bytea, b bytea) RETURNS bytea
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN plugmon._sketch_merge_array(ARRAY[a, b]);

-- The values at the quantiles `qs`, in order, exactly as dd_sketch::quantile computes them: 0 for
-- an empty sketch; min for q <= 0 or NaN; max for q >= 1; otherwise rank = floor(q * (count - 1))
-- (the product in double precision, as the agent does), and the midpoint of the first bucket whose
-- cumulative count exceeds rank, clamped to [min, max]. A NULL q gives a NULL element. Raises on a
-- malformed header, a bin index out of range, or bins that do not add up to the count.
CREATE FUNCTION plugmon.sketch_quantiles(sketch bytea, qs double precision[]) RETURNS bigint[]
    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
    total bigint;
    min_bits bigint;
    max_bits bigint;
    n integer;
    bin_total numeric;
    in_range boolean;
    result bigint[] := '{}';
    q double precision;
    r double precision;
    rank bigint;
    seen bigint;
    pos integer;
    i bigint;
BEGIN
    PERFORM plugmon._sketch_check(sketch);
    total := plugmon._sketch_u64(sketch, 8);
    min_bits := plugmon._sketch_u64(sketch, 24);
    max_bits := plugmon._sketch_u64(sketch, 32);
    n := plugmon._sketch_u32(sketch, 40)::integer;
    SELECT coalesce(sum(plugmon._sketch_u64(sketch, 48 + 12 * k)), 0),
           coalesce(bool_and(substring(sketch FROM 45 + 12 * k FOR 4) < '\x00000ec0'::bytea), true)
      INTO bin_total, in_range
      FROM generate_series(0, n - 1) AS k;
    IF NOT in_range THEN
        RAISE EXCEPTION 'plugmon sketch: bins.index: an index is out of range (limit 3776)'
            USING ERRCODE = 'invalid_binary_representation';
    END IF;
    IF bin_total <> total THEN
        RAISE EXCEPTION 'plugmon sketch: count: % but the bins sum to %', total, bin_total
            USING ERRCODE = 'invalid_binary_representation';
    END IF;
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
            r := q * (total - 1)::double precision;
            rank := CASE WHEN r >= 9223372036854775807::double precision THEN total - 1
                         ELSE least(total - 1, floor(r)::bigint) END;
            seen := 0;
            pos := 0;
            LOOP
                seen := seen + plugmon._sketch_u64(sketch, 48 + 12 * pos);
                EXIT WHEN seen > rank;
                pos := pos + 1;
            END LOOP;
            i := plugmon._sketch_u32(sketch, 44 + 12 * pos);
            result := result || plugmon._u64_bits(
                greatest(plugmon._u64_value(min_bits),
                         least(plugmon._u64_value(max_bits), plugmon._sketch_value_of(i::integer))));
        END IF;
    END LOOP;
    RETURN result;
END
$$;
COMMENT ON FUNCTION plugmon.sketch_quantiles(bytea, double precision[]) IS
    'Values (ns) at the quantiles, exactly as the agent''s dd_sketch::quantile; one decode for all of them';

-- The value at quantile `q` (see sketch_quantiles), e.g.
--   SELECT plugmon.sketch_quantile(plugmon.sketch_merge(sketch), 0.99) FROM plugmon.query_rollups_all WHERE ...
CREATE FUNCTION plugmon.sketch_quantile(sketch bytea, q double precision) RETURNS bigint
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN (plugmon.sketch_quantiles(sketch, ARRAY[q]))[1];
COMMENT ON FUNCTION plugmon.sketch_quantile(bytea, double precision) IS
    'Value (ns) at quantile q, exactly as the agent''s dd_sketch::quantile';

-- The number of values recorded in the sketch.
CREATE FUNCTION plugmon.sketch_count(sketch bytea) RETURNS bigint
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN plugmon._sketch_u64(plugmon._sketch_check(sketch), 8);
