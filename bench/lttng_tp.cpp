// Instantiates the LTTng-UST probes of bench/lttng_tp.h (the tracepoint provider of probe_bench).
#define LTTNG_UST_TRACEPOINT_CREATE_PROBES
#define LTTNG_UST_TRACEPOINT_DEFINE
#include "lttng_tp.h"
