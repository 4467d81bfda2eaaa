// plugmon_sketch: the agent's DDSketch functions in C for PostgreSQL (encodings 1 and 2), byte for
// byte and message for message what the PL/pgSQL in agent/store/schema/sql/0006_sketch_v2.sql does.
//
// Thread safety: PostgreSQL backends are single-threaded; every function works on its arguments
// and on memory of the calling context only (the aggregate state lives in the aggregate context).
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

/// A merge in progress: totals and a window [lo, lo + width) of bin counts that grows on demand.
/// `inputs` counts the non-NULL sketches merged (none: the merge is NULL).
typedef struct pm_state {
    uint64 inputs;
    uint64 count, sum, min, max;
    bool nonempty;
    bool overflow;  // the merged count passed 2^64 - 1
    uint32 lo, width;
    uint64* bins;
} pm_state;

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

/// Makes the window cover [lo, hi], growing it by at least a quarter (allocates in `cx`).
static void pm_cover(pm_state* st, uint32 lo, uint32 hi, MemoryContext cx) {
    uint32 new_lo, new_hi, grow;
    uint64* bins;
    if (st->width != 0 && lo >= st->lo && hi < st->lo + st->width) return;
    new_lo = st->width == 0 ? lo : Min(lo, st->lo);
    new_hi = st->width == 0 ? hi : Max(hi, st->lo + st->width - 1);
    grow = Max((new_hi - new_lo + 1) / 4, 32);
    new_lo = new_lo > grow ? new_lo - grow : 0;
    new_hi = Min(new_hi + grow, PM_INDEX_LIMIT - 1);
    bins = MemoryContextAllocZero(cx, sizeof(uint64) * (new_hi - new_lo + 1));
    if (st->width != 0) {
        memcpy(bins + (st->lo - new_lo), st->bins, sizeof(uint64) * st->width);
        pfree(st->bins);
    }
    st->bins = bins;
    st->lo = new_lo;
    st->width = new_hi - new_lo + 1;
}

/// Adds a decoded sketch into the merge (as dd_sketch::merge; the sum saturates).
static void pm_add(pm_state* st, const pm_sketch* s, MemoryContext cx) {
    st->inputs++;
    st->sum = st->sum + s->sum < st->sum ? PM_U64_MAX : st->sum + s->sum;  // empty inputs too
    if (s->count == 0) return;
    pm_cover(st, s->idx[0], s->idx[s->nbins - 1], cx);
    for (int k = 0; k < s->nbins; ++k) st->bins[s->idx[k] - st->lo] += s->cnt[k];
    if (st->count + s->count < st->count) st->overflow = true;
    st->count += s->count;
    st->min = st->nonempty ? Min(st->min, s->min) : s->min;
    st->max = st->nonempty ? Max(st->max, s->max) : s->max;
    st->nonempty = true;
}

static pm_state* pm_new_state(MemoryContext cx) {
    return MemoryContextAllocZero(cx, sizeof(pm_state));
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
    if (st->overflow) pm_fail("count: the merged counts overflow 64 bits");
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

/// Merges `src` into `dst` (both states of one aggregate; allocates in `cx`).
static void pm_combine_into(pm_state* dst, const pm_state* src, MemoryContext cx) {
    dst->inputs += src->inputs;
    dst->overflow = dst->overflow || src->overflow;
    dst->sum = dst->sum + src->sum < dst->sum ? PM_U64_MAX : dst->sum + src->sum;
    if (!src->nonempty) return;
    pm_cover(dst, src->lo, src->lo + src->width - 1, cx);
    for (uint32 k = 0; k < src->width; ++k) dst->bins[src->lo + k - dst->lo] += src->bins[k];
    if (dst->count + src->count < dst->count) dst->overflow = true;
    dst->count += src->count;
    dst->min = dst->nonempty ? Min(dst->min, src->min) : src->min;
    dst->max = dst->nonempty ? Max(dst->max, src->max) : src->max;
    dst->nonempty = true;
}

static MemoryContext pm_agg_context(FunctionCallInfo fcinfo, const char* fn) {
    MemoryContext cx;
    if (!AggCheckCallContext(fcinfo, &cx)) elog(ERROR, "%s called in non-aggregate context", fn);
    return cx;
}

PG_FUNCTION_INFO_V1(pm_merge_trans);
/// sketch_merge's transition: decodes and adds one sketch; NULL inputs are skipped.
Datum pm_merge_trans(PG_FUNCTION_ARGS) {
    MemoryContext cx = pm_agg_context(fcinfo, "plugmon_sketch.merge_trans");
    pm_state* st = PG_ARGISNULL(0) ? NULL : (pm_state*)PG_GETARG_POINTER(0);
    if (!PG_ARGISNULL(1)) {
        pm_sketch* s = palloc(sizeof(pm_sketch));
        pm_decode(PG_GETARG_BYTEA_PP(1), s);
        if (st == NULL) st = pm_new_state(cx);
        pm_add(st, s, cx);
        pfree(s);
    }
    if (st == NULL) PG_RETURN_NULL();
    PG_RETURN_POINTER(st);
}

PG_FUNCTION_INFO_V1(pm_merge_combine);
/// sketch_merge's combine function (parallel and partial aggregation).
Datum pm_merge_combine(PG_FUNCTION_ARGS) {
    MemoryContext cx = pm_agg_context(fcinfo, "plugmon_sketch.merge_combine");
    pm_state* a = PG_ARGISNULL(0) ? NULL : (pm_state*)PG_GETARG_POINTER(0);
    const pm_state* b = PG_ARGISNULL(1) ? NULL : (const pm_state*)PG_GETARG_POINTER(1);
    if (b == NULL) {
        if (a == NULL) PG_RETURN_NULL();
        PG_RETURN_POINTER(a);
    }
    if (a == NULL) a = pm_new_state(cx);
    pm_combine_into(a, b, cx);
    PG_RETURN_POINTER(a);
}

PG_FUNCTION_INFO_V1(pm_merge_final);
/// sketch_merge's final function: the version 2 encoding, NULL when no input was non-NULL.
Datum pm_merge_final(PG_FUNCTION_ARGS) {
    if (PG_ARGISNULL(0)) PG_RETURN_NULL();
    PG_RETURN_BYTEA_P(pm_encode((const pm_state*)PG_GETARG_POINTER(0)));
}

// The serialized state: u64 inputs, count, sum, min, max; u8 nonempty, overflow; u32 lo, width;
// then width u64 bins (native byte order: the state only travels between workers of one server).
#define PM_SERIAL_HEAD (5 * 8 + 2 + 2 * 4)

PG_FUNCTION_INFO_V1(pm_merge_serial);
Datum pm_merge_serial(PG_FUNCTION_ARGS) {
    const pm_state* st = (const pm_state*)PG_GETARG_POINTER(0);
    const Size size = PM_SERIAL_HEAD + sizeof(uint64) * (Size)st->width;
    bytea* out = palloc(VARHDRSZ + size);
    char* p = VARDATA(out);
    const uint64 head[5] = {st->inputs, st->count, st->sum, st->min, st->max};
    SET_VARSIZE(out, VARHDRSZ + size);
    memcpy(p, head, sizeof head);
    p[40] = (char)st->nonempty;
    p[41] = (char)st->overflow;
    memcpy(p + 42, &st->lo, 4);
    memcpy(p + 46, &st->width, 4);
    if (st->width != 0) memcpy(p + PM_SERIAL_HEAD, st->bins, sizeof(uint64) * st->width);
    PG_RETURN_BYTEA_P(out);
}

PG_FUNCTION_INFO_V1(pm_merge_deserial);
Datum pm_merge_deserial(PG_FUNCTION_ARGS) {
    const bytea* b = PG_GETARG_BYTEA_PP(0);
    const char* p = VARDATA_ANY(b);
    pm_state* st = pm_new_state(CurrentMemoryContext);
    uint64 head[5];
    if (VARSIZE_ANY_EXHDR(b) < PM_SERIAL_HEAD) elog(ERROR, "plugmon_sketch: bad serialized state");
    memcpy(head, p, sizeof head);
    st->inputs = head[0];
    st->count = head[1];
    st->sum = head[2];
    st->min = head[3];
    st->max = head[4];
    st->nonempty = p[40] != 0;
    st->overflow = p[41] != 0;
    memcpy(&st->lo, p + 42, 4);
    memcpy(&st->width, p + 46, 4);
    if (VARSIZE_ANY_EXHDR(b) != PM_SERIAL_HEAD + sizeof(uint64) * (Size)st->width ||
        st->width > PM_INDEX_LIMIT || st->lo + st->width > PM_INDEX_LIMIT)
        elog(ERROR, "plugmon_sketch: bad serialized state");
    if (st->width != 0) {
        st->bins = palloc(sizeof(uint64) * st->width);
        memcpy(st->bins, p + PM_SERIAL_HEAD, sizeof(uint64) * st->width);
    }
    PG_RETURN_POINTER(st);
}

PG_FUNCTION_INFO_V1(pm_sketch_union);
/// sketch_union(a, b): the merge of the non-NULL ones, NULL when both are NULL.
Datum pm_sketch_union(PG_FUNCTION_ARGS) {
    pm_state* st = pm_new_state(CurrentMemoryContext);
    pm_sketch* s = palloc(sizeof(pm_sketch));
    for (int k = 0; k < 2; ++k) {
        if (PG_ARGISNULL(k)) continue;
        pm_decode(PG_GETARG_BYTEA_PP(k), s);
        pm_add(st, s, CurrentMemoryContext);
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
