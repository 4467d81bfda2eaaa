// plugmon_sketch: the agent's DDSketch functions in C for PostgreSQL (encodings 1 and 2), byte for
// byte and message for message what the PL/pgSQL in agent/store/schema/sql/0006_sketch_v2.sql does.
//
// Thread safety: PostgreSQL backends are single-threaded; every function works on its arguments
// and on memory of the calling context only (the executor keeps the aggregate state, a bytea).
#include "postgres.h"

#include <string.h>

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

PG_MODULE_MAGIC;

#define PM_INDEX_LIMIT 3776  // dd_sketch::index_limit
#define PM_EXACT_LIMIT 128   // dd_sketch::exact_limit
#define PM_V1_HEADER 44      // version 1: fixed header bytes
#define PM_V1_RECORD 12      // version 1: bytes per bin
#define PM_V2_PREFIX 6       // both: "PMDS", version, sub-bucket bits
#define PM_MAX_VARINT 10     // version 2: longest varint
#define PM_U64_MAX UINT64CONST(0xFFFFFFFFFFFFFFFF)

/// A decoded, validated sketch: bins in increasing index order, counts >= 1.
typedef struct pm_sketch {
    uint64 count, sum, min, max;
    int nbins;
    uint32 idx[PM_INDEX_LIMIT];
    uint64 cnt[PM_INDEX_LIMIT];
} pm_sketch;

/// A merge in progress, kept as a bytea (a role that is not superuser may define an aggregate
/// over bytea, not over internal; partial states travel between workers as they are): totals and
/// a window [lo, lo + width) of bin counts. `inputs` counts the non-NULL sketches merged (none: the
/// merge is NULL). Transition and combine functions modify it in place, as an aggregate may, and
/// return a new value (in the calling context; the executor copies it) only when the window grows.
typedef struct pm_state {
    int32 vl_len_;  // varlena header: always the 4-byte form
    uint32 lo, width;
    uint32 flags;
    uint64 inputs, count, sum, min, max;
    uint64 bins[FLEXIBLE_ARRAY_MEMBER];
} pm_state;

#define PM_NONEMPTY 1u  // some input had count > 0: min and max are set
#define PM_OVERFLOW 2u  // the merged count passed 2^64 - 1
#define PM_STATE_SIZE(width) (offsetof(pm_state, bins) + sizeof(uint64) * (Size)(width))

/// Raises invalid_binary_representation with "plugmon sketch: <message>", like _sketch_fail.
#define pm_fail(...)                                                \
    ereport(ERROR, (errcode(ERRCODE_INVALID_BINARY_REPRESENTATION), \
                    errmsg("plugmon sketch: %s", psprintf(__VA_ARGS__))))

static uint64 pm_get_be(const unsigned char* p, int bytes) {
    uint64 v = 0;
    for (int k = 0; k < bytes; ++k) v = (v << 8) | p[k];
    return v;
}

/// The name of varint field `f` of a version 2 encoding (as _sketch_v2_field).
static const char* pm_v2_field(int f) {
    static const char* const head[] = {"count", "sum", "min", "max", "n"};
    if (f < 5) return head[f];
    return psprintf("bins[%d].%s", (f - 5) / 2, (f - 5) % 2 == 0 ? "index" : "count");
}

/// The decimal text of a + b without overflow (for a message about an index past the limit).
static char* pm_u65_text(uint64 a, uint64 b) {
    unsigned __int128 v = (unsigned __int128)a + b;
    char buf[48];
    int at = (int)sizeof buf - 1;
    buf[at] = '\0';
    do {
        buf[--at] = (char)('0' + (int)(v % 10));
        v /= 10;
    } while (v != 0);
    return pstrdup(buf + at);
}

/// The checks after the bins (as _sketch_check_total).
static void pm_check_total(uint64 count, uint64 total, bool overflow) {
    if (overflow) pm_fail("count: the bin counts overflow 64 bits");
    if (total != count)
        pm_fail("count: " UINT64_FORMAT " but the bins sum to " UINT64_FORMAT, count, total);
}

/// Reads the varint of field `f` at *pos, advancing it (as the loop in _sketch_v2_to_v1).
static uint64 pm_varint(const unsigned char* p, int len, int* pos, int f) {
    uint64 v = 0;
    int shift = 0;
    unsigned byte;
    for (;;) {
        if (*pos >= len) pm_fail("%s: truncated varint", pm_v2_field(f));
        byte = p[(*pos)++];
        if (shift == 63 && byte > 1) pm_fail("%s: varint exceeds 64 bits", pm_v2_field(f));
        v |= (uint64)(byte & 127) << shift;
        if (byte < 128) break;
        shift += 7;
    }
    if (byte == 0 && shift > 0)
        pm_fail("%s: non-canonical varint (a zero last byte)", pm_v2_field(f));
    return v;
}

/// Decodes and validates version 2 after the prefix (as _sketch_v2_to_v1).
static void pm_decode_v2(const unsigned char* p, int len, pm_sketch* s) {
    int pos = PM_V2_PREFIX;
    uint64 head[5], total = 0, idx = 0;
    bool overflow = false;
    for (int f = 0; f < 5; ++f) head[f] = pm_varint(p, len, &pos, f);
    if (head[4] > PM_INDEX_LIMIT)
        pm_fail("n: " UINT64_FORMAT " bins, but there are only 3776 indices", head[4]);
    s->nbins = (int)head[4];
    for (int k = 0; k < s->nbins; ++k) {
        const int f = 5 + 2 * k;
        const uint64 delta = pm_varint(p, len, &pos, f);
        uint64 c;
        if (k > 0 && delta == 0) pm_fail("%s: zero delta (indices must increase)", pm_v2_field(f));
        if (delta >= PM_INDEX_LIMIT - idx)
            pm_fail("%s: %s is out of range (limit 3776)", pm_v2_field(f), pm_u65_text(delta, idx));
        idx += delta;
        c = pm_varint(p, len, &pos, f + 1);
        if (c == 0) pm_fail("%s: zero (only non-empty bins are encoded)", pm_v2_field(f + 1));
        if (total + c < total) overflow = true;
        total += c;
        s->idx[k] = (uint32)idx;
        s->cnt[k] = c;
    }
    if (pos != len) pm_fail("length: %d bytes, but the encoding ends at byte %d", len, pos);
    pm_check_total(head[0], total, overflow);
    s->count = head[0];
    s->sum = head[1];
    s->min = head[2];
    s->max = head[3];
}

/// Decodes and validates version 1 after the prefix (as _sketch_reject and _sketch_to_v1).
static void pm_decode_v1(const unsigned char* p, int len, pm_sketch* s) {
    uint64 n, total = 0;
    bool overflow = false;
    if (len < PM_V1_HEADER) pm_fail("length: %d bytes is shorter than the 44-byte header", len);
    if (p[6] != 0 || p[7] != 0) pm_fail("reserved: bytes 6..7 must be zero");
    n = pm_get_be(p + 40, 4);
    if (n > PM_INDEX_LIMIT)
        pm_fail("n: " UINT64_FORMAT " bins, but there are only 3776 indices", n);
    if ((uint64)len != PM_V1_HEADER + PM_V1_RECORD * n)
        pm_fail("length: %d bytes, expected " UINT64_FORMAT " for n = " UINT64_FORMAT " bins", len,
                PM_V1_HEADER + PM_V1_RECORD * n, n);
    s->nbins = (int)n;
    for (int k = 0; k < s->nbins; ++k) {
        const unsigned char* r = p + PM_V1_HEADER + PM_V1_RECORD * k;
        const uint32 i = (uint32)pm_get_be(r, 4);
        const uint64 c = pm_get_be(r + 4, 8);
        if (i >= PM_INDEX_LIMIT) pm_fail("bins[%d].index: %u is out of range (limit 3776)", k, i);
        if (k > 0 && i <= s->idx[k - 1])
            pm_fail("bins[%d].index: %u does not increase (previous %u)", k, i, s->idx[k - 1]);
        if (c == 0) pm_fail("bins[%d].count: zero (only non-empty bins are encoded)", k);
        if (total + c < total) overflow = true;
        total += c;
        s->idx[k] = i;
        s->cnt[k] = c;
    }
    pm_check_total(pm_get_be(p + 8, 8), total, overflow);
    s->count = pm_get_be(p + 8, 8);
    s->sum = pm_get_be(p + 16, 8);
    s->min = pm_get_be(p + 24, 8);
    s->max = pm_get_be(p + 32, 8);
}

/// Decodes and validates a sketch of either version; raises naming the field at fault.
static void pm_decode(const bytea* b, pm_sketch* s) {
    const unsigned char* p = (const unsigned char*)VARDATA_ANY(b);
    const int len = (int)VARSIZE_ANY_EXHDR(b);
    if (len < PM_V2_PREFIX) pm_fail("length: %d bytes is shorter than the 6-byte prefix", len);
    if (memcmp(p, "PMDS", 4) != 0)
        pm_fail("magic: expected \"PMDS\", found 0x%02x%02x%02x%02x", p[0], p[1], p[2], p[3]);
    if (p[4] != 1 && p[4] != 2) pm_fail("version: %d is not supported (expected 1 or 2)", p[4]);
    if (p[5] != 6) pm_fail("sub_bucket_bits: %d is not supported (expected 6)", p[5]);
    if (p[4] == 2)
        pm_decode_v2(p, len, s);
    else
        pm_decode_v1(p, len, s);
}

static pm_state* pm_new_state(uint32 lo, uint32 width) {
    pm_state* st = palloc0(PM_STATE_SIZE(width));
    SET_VARSIZE(st, PM_STATE_SIZE(width));
    st->lo = lo;
    st->width = width;
    return st;
}

/// `d` as a state, or an error: its size must match its window, inside [0, 3776). Checked on every
/// call, since anyone may hand these functions a bytea (an aggregate's INITCOND, for one). A state
/// this library made is returned as it is (modifiable in place); another form is copied.
static pm_state* pm_state_of(Datum d) {
    struct varlena* v = (struct varlena*)DatumGetPointer(d);
    pm_state* st;
    if (!VARATT_IS_4B_U(v) || (uintptr_t)v % MAXIMUM_ALIGNOF != 0)
        v = (struct varlena*)PG_DETOAST_DATUM_COPY(d);
    st = (pm_state*)v;
    if (VARSIZE(st) < PM_STATE_SIZE(0) || st->lo > PM_INDEX_LIMIT || st->width > PM_INDEX_LIMIT ||
        st->lo + st->width > PM_INDEX_LIMIT || VARSIZE(st) != PM_STATE_SIZE(st->width))
        ereport(ERROR, (errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
                        errmsg("plugmon_sketch: not a merge state")));
    return st;
}

/// Makes the window cover [lo, hi], growing it by at least a quarter; returns the state, a new
/// one (in CurrentMemoryContext) if it grew. The old one is left to its owner.
static pm_state* pm_cover(pm_state* st, uint32 lo, uint32 hi) {
    uint32 new_lo, new_hi, grow;
    pm_state* grown;
    if (st->width != 0 && lo >= st->lo && hi < st->lo + st->width) return st;
    new_lo = st->width == 0 ? lo : Min(lo, st->lo);
    new_hi = st->width == 0 ? hi : Max(hi, st->lo + st->width - 1);
    grow = Max((new_hi - new_lo + 1) / 4, 32);
    new_lo = new_lo > grow ? new_lo - grow : 0;
    new_hi = Min(new_hi + grow, PM_INDEX_LIMIT - 1);
    grown = pm_new_state(new_lo, new_hi - new_lo + 1);
    memcpy(&grown->flags, &st->flags, offsetof(pm_state, bins) - offsetof(pm_state, flags));
    if (st->width != 0)
        memcpy(grown->bins + (st->lo - new_lo), st->bins, sizeof(uint64) * st->width);
    return grown;
}

static uint64 pm_sat_add(uint64 a, uint64 b) { return a + b < a ? PM_U64_MAX : a + b; }

/// Adds totals (count, sum, min, max of a non-empty part) into the state, as dd_sketch::merge.
static void pm_add_totals(pm_state* st, uint64 count, uint64 sum, uint64 min, uint64 max) {
    st->sum = pm_sat_add(st->sum, sum);  // empty inputs too, as the PL/pgSQL
    if (count == 0) return;
    if (st->count + count < st->count) st->flags |= PM_OVERFLOW;
    st->count += count;
    st->min = (st->flags & PM_NONEMPTY) ? Min(st->min, min) : min;
    st->max = (st->flags & PM_NONEMPTY) ? Max(st->max, max) : max;
    st->flags |= PM_NONEMPTY;
}

/// Adds a decoded sketch into the merge; returns the state (see pm_cover).
static pm_state* pm_add(pm_state* st, const pm_sketch* s) {
    st->inputs++;
    if (s->count != 0) {
        st = pm_cover(st, s->idx[0], s->idx[s->nbins - 1]);
        for (int k = 0; k < s->nbins; ++k) st->bins[s->idx[k] - st->lo] += s->cnt[k];
    }
    pm_add_totals(st, s->count, s->sum, s->min, s->max);
    return st;
}

/// Merges `src` into `dst`; returns the state (see pm_cover).
static pm_state* pm_combine_into(pm_state* dst, const pm_state* src) {
    dst->inputs += src->inputs;
    dst->flags |= src->flags & PM_OVERFLOW;
    if (src->width != 0) {
        dst = pm_cover(dst, src->lo, src->lo + src->width - 1);
        for (uint32 k = 0; k < src->width; ++k) dst->bins[src->lo + k - dst->lo] += src->bins[k];
    }
    pm_add_totals(dst, (src->flags & PM_NONEMPTY) ? src->count : 0, src->sum, src->min, src->max);
    return dst;
}

static unsigned char* pm_put_varint(unsigned char* out, uint64 v) {
    for (; v >= 128; v >>= 7) *out++ = (unsigned char)((v & 127) | 128);
    *out++ = (unsigned char)v;
    return out;
}

/// The version 2 encoding of a merge (as the end of _sketch_merge_array).
static bytea* pm_encode(const pm_state* st) {
    uint32 nbins = 0, prev = 0;
    bytea* out;
    unsigned char *p, *start;
    if (st->flags & PM_OVERFLOW) pm_fail("count: the merged counts overflow 64 bits");
    if (st->count == 0) {
        out = palloc(VARHDRSZ + 11);
        SET_VARSIZE(out, VARHDRSZ + 11);
        memcpy(VARDATA(out), "PMDS\x02\x06\0\0\0\0\0", 11);
        return out;
    }
    for (uint32 k = 0; k < st->width; ++k) nbins += st->bins[k] != 0;
    out = palloc(VARHDRSZ + PM_V2_PREFIX + PM_MAX_VARINT * (5 + 2 * (Size)nbins));
    start = p = (unsigned char*)VARDATA(out);
    memcpy(p, "PMDS\x02\x06", PM_V2_PREFIX);
    p += PM_V2_PREFIX;
    p = pm_put_varint(p, st->count);
    p = pm_put_varint(p, st->sum);
    p = pm_put_varint(p, st->min);
    p = pm_put_varint(p, st->max);
    p = pm_put_varint(p, nbins);
    for (uint32 k = 0; k < st->width; ++k) {
        if (st->bins[k] == 0) continue;
        p = pm_put_varint(p, st->lo + k - prev);
        p = pm_put_varint(p, st->bins[k]);
        prev = st->lo + k;
    }
    SET_VARSIZE(out, VARHDRSZ + (p - start));
    return out;
}

static void pm_require_aggregate(FunctionCallInfo fcinfo, const char* fn) {
    if (!AggCheckCallContext(fcinfo, NULL)) elog(ERROR, "%s called in non-aggregate context", fn);
}

PG_FUNCTION_INFO_V1(pm_merge_trans);
/// sketch_merge's transition: decodes and adds one sketch; NULL inputs are skipped.
Datum pm_merge_trans(PG_FUNCTION_ARGS) {
    pm_state* st;
    pm_sketch* s;
    pm_require_aggregate(fcinfo, "plugmon_sketch.merge_trans");
    if (PG_ARGISNULL(1)) {
        if (PG_ARGISNULL(0)) PG_RETURN_NULL();
        PG_RETURN_DATUM(PG_GETARG_DATUM(0));
    }
    st = PG_ARGISNULL(0) ? pm_new_state(0, 0) : pm_state_of(PG_GETARG_DATUM(0));
    s = palloc(sizeof(pm_sketch));
    pm_decode(PG_GETARG_BYTEA_PP(1), s);
    st = pm_add(st, s);
    pfree(s);
    PG_RETURN_POINTER(st);
}

PG_FUNCTION_INFO_V1(pm_merge_combine);
/// sketch_merge's combine function (parallel and partial aggregation).
Datum pm_merge_combine(PG_FUNCTION_ARGS) {
    pm_state* a;
    pm_require_aggregate(fcinfo, "plugmon_sketch.merge_combine");
    if (PG_ARGISNULL(1)) {
        if (PG_ARGISNULL(0)) PG_RETURN_NULL();
        PG_RETURN_DATUM(PG_GETARG_DATUM(0));
    }
    a = PG_ARGISNULL(0) ? pm_new_state(0, 0) : pm_state_of(PG_GETARG_DATUM(0));
    PG_RETURN_POINTER(pm_combine_into(a, pm_state_of(PG_GETARG_DATUM(1))));
}

PG_FUNCTION_INFO_V1(pm_merge_final);
/// sketch_merge's final function: the version 2 encoding, NULL when no input was non-NULL.
Datum pm_merge_final(PG_FUNCTION_ARGS) {
    const pm_state* st;
    if (PG_ARGISNULL(0)) PG_RETURN_NULL();
    st = pm_state_of(PG_GETARG_DATUM(0));
    if (st->inputs == 0) PG_RETURN_NULL();
    PG_RETURN_BYTEA_P(pm_encode(st));
}

PG_FUNCTION_INFO_V1(pm_sketch_union);
/// sketch_union(a, b): the merge of the non-NULL ones, NULL when both are NULL.
Datum pm_sketch_union(PG_FUNCTION_ARGS) {
    pm_state* st = pm_new_state(0, 0);
    pm_sketch* s = palloc(sizeof(pm_sketch));
    for (int k = 0; k < 2; ++k) {
        if (PG_ARGISNULL(k)) continue;
        pm_decode(PG_GETARG_BYTEA_PP(k), s);
        st = pm_add(st, s);
    }
    if (st->inputs == 0) PG_RETURN_NULL();
    PG_RETURN_BYTEA_P(pm_encode(st));
}

/// The value that stands for bucket i: its midpoint rounded down (dd_sketch::value_of).
static uint64 pm_value_of(uint32 i) {
    uint32 e;
    uint64 sub;
    if (i < PM_EXACT_LIMIT) return i;
    e = (i - PM_EXACT_LIMIT) / 64 + 7;
    sub = (i - PM_EXACT_LIMIT) % 64;
    return ((64 + sub) << (e - 6)) + ((UINT64CONST(1) << (e - 6)) - 1) / 2;
}

/// dd_sketch::quantile over decoded bins (walked in order, clamped as greatest(min, least(max, v))).
static uint64 pm_quantile(const pm_sketch* s, double q) {
    double r;
    uint64 rank, seen = 0, v;
    if (s->count == 0) return 0;
    if (!(q > 0.0)) return s->min;  // also NaN
    if (!(q < 1.0)) return s->max;
    r = q * (double)(s->count - 1);
    rank = r >= 18446744073709551616.0 ? s->count - 1 : Min(s->count - 1, (uint64)r);
    for (int k = 0; k < s->nbins; ++k) {
        seen += s->cnt[k];
        if (seen > rank) {
            v = Min(s->max, pm_value_of(s->idx[k]));
            return Max(s->min, v);
        }
    }
    return s->max;  // unreachable: the bins add up to count
}

PG_FUNCTION_INFO_V1(pm_sketch_quantiles);
/// sketch_quantiles(sketch, qs): one element per element of qs (NULL for NULL), in order.
Datum pm_sketch_quantiles(PG_FUNCTION_ARGS) {
    ArrayType* qs = PG_GETARG_ARRAYTYPE_P(1);
    pm_sketch* s = palloc(sizeof(pm_sketch));
    Datum* elems;
    bool* nulls;
    int n, dims[1], lbs[1] = {1};
    pm_decode(PG_GETARG_BYTEA_PP(0), s);
    deconstruct_array(qs, FLOAT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE, &elems, &nulls, &n);
    if (n == 0) PG_RETURN_ARRAYTYPE_P(construct_empty_array(INT8OID));
    for (int k = 0; k < n; ++k)
        if (!nulls[k]) elems[k] = Int64GetDatum((int64)pm_quantile(s, DatumGetFloat8(elems[k])));
    dims[0] = n;
    PG_RETURN_ARRAYTYPE_P(construct_md_array(elems, nulls, 1, dims, lbs, INT8OID, 8,
                                             FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
}

PG_FUNCTION_INFO_V1(pm_sketch_quantile);
/// sketch_quantile(sketch, q): NULL when either is NULL; validates the sketch even then.
Datum pm_sketch_quantile(PG_FUNCTION_ARGS) {
    pm_sketch* s;
    if (PG_ARGISNULL(0)) PG_RETURN_NULL();
    s = palloc(sizeof(pm_sketch));
    pm_decode(PG_GETARG_BYTEA_PP(0), s);
    if (PG_ARGISNULL(1)) PG_RETURN_NULL();
    PG_RETURN_INT64((int64)pm_quantile(s, PG_GETARG_FLOAT8(1)));
}

PG_FUNCTION_INFO_V1(pm_sketch_count);
/// sketch_count(sketch): the number of values recorded (validates the sketch in full).
Datum pm_sketch_count(PG_FUNCTION_ARGS) {
    pm_sketch* s = palloc(sizeof(pm_sketch));
    pm_decode(PG_GETARG_BYTEA_PP(0), s);
    PG_RETURN_INT64((int64)s->count);
}
