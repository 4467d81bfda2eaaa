// LTTng-UST tracepoint provider for probe_bench: one event with the fields of a plugmon query
// event, so the peer records what the probe records.
#undef LTTNG_UST_TRACEPOINT_PROVIDER
#define LTTNG_UST_TRACEPOINT_PROVIDER plugmon_bench

#undef LTTNG_UST_TRACEPOINT_INCLUDE
#define LTTNG_UST_TRACEPOINT_INCLUDE "./lttng_tp.h"

#if !defined(PLUGMON_BENCH_LTTNG_TP_H) || defined(LTTNG_UST_TRACEPOINT_HEADER_MULTI_READ)
#define PLUGMON_BENCH_LTTNG_TP_H

#include <lttng/tracepoint.h>

#include <stdint.h>

LTTNG_UST_TRACEPOINT_EVENT(
    plugmon_bench, query,
    LTTNG_UST_TP_ARGS(uint32_t, plugin, uint32_t, op, uint32_t, table, uint32_t, tenant, uint8_t,
                      flags, uint64_t, start, uint64_t, duration, uint64_t, rows),
    LTTNG_UST_TP_FIELDS(lttng_ust_field_integer(uint32_t, plugin, plugin)
                            lttng_ust_field_integer(uint32_t, op, op)
                                lttng_ust_field_integer(uint32_t, table, table)
                                    lttng_ust_field_integer(uint32_t, tenant, tenant)
                                        lttng_ust_field_integer(uint8_t, flags, flags)
                                            lttng_ust_field_integer(uint64_t, start, start)
                                                lttng_ust_field_integer(uint64_t, duration, duration)
                                                    lttng_ust_field_integer(uint64_t, rows, rows)))

#endif

#include <lttng/tracepoint-event.h>
