// Per-event cost of the probe against the physical floor of a timed event, with an in-process drain
// emptying the lanes, and against prometheus-cpp histograms, an LTTng-UST tracepoint (when built with
// liblttng-ust) and a Boost.Interprocess message queue.
//
// Every figure is CPU time per event on the recording thread (Google Benchmark's cpu_time with
// one event per iteration). Runs: bench/run_probe_bench.sh (medians and ratios to BM_floor).
//
// Environment, read before the probe's first use (PLUGMON_RUNTIME_DIR is always replaced by a fresh
// temporary directory, where the in-process agent listens):
//   PLUGMON_LANE_SLOTS   lane size, default here 1048576 (64 MiB per lane); PLUGMON_LANES default 8
//   PLUGMON_BENCH_EVENTS events a recording thread writes between two waits for the drain (default
//                        7/8 of a lane, so a lane never fills; 0: never wait, lanes may fill)
#include <plugmon/probe.hpp>

#include "aggregate/series.hpp"
#include "config/config.hpp"
#include "ingest/drainer.hpp"
#include "ingest/intake.hpp"
#include "common/tsc.hpp"
#include "statement_texts.hpp"
#include "../tests/support/inproc_agent.hpp"

#include <benchmark/benchmark.h>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/date_time/posix_time/posix_time_types.hpp>
#include <boost/interprocess/ipc/message_queue.hpp>
#include <prometheus/family.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <unistd.h>
#include <x86intrin.h>

#ifdef PLUGMON_BENCH_LTTNG
#include "lttng_tp.h"
#endif

namespace pa = plugmon::agent;
namespace bip = boost::interprocess;

namespace {

// ---- settings and shared state (set in main before any benchmark runs) ----

std::uint64_t env_u64(const char* name, std::uint64_t fallback) {
    const char* v = std::getenv(name);
    if (v == nullptr || *v == '\0') return fallback;
    char* end = nullptr;
    const unsigned long long n = std::strtoull(v, &end, 10);
    return (end != nullptr && *end == '\0') ? n : fallback;
}

double g_ns_per_tick = 1.0;
std::atomic<bool> g_failed{false};  // any benchmark found a broken precondition: exit status 1

void fail(benchmark::State& state, const char* what) {
    g_failed.store(true);
    state.SkipWithError(what);
}

using plugmon::test::inproc_agent;

inproc_agent* g_agent = nullptr;
std::optional<plugmon::Plugin> g_plugin;  // built after the environment is set
plugmon::ProbeStats g_before;             // probe counters when the current run started

/// Waits until the drain has consumed everything published so far (lanes empty).
bool wait_until_drained(std::chrono::milliseconds limit) {
    const auto end = std::chrono::steady_clock::now() + limit;
    for (;;) {
        const std::uint64_t written = plugmon::probe_stats().events_written;
        if (g_agent->totals().drained.get() >= written) return true;
        if (std::chrono::steady_clock::now() > end) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
}

/// Timing paused: waits until the drain has completed a whole pass that began after this call, so
/// everything this thread published before the call has been consumed and its lane is empty.
void wait_for_drain_pass(benchmark::State& state) {
    state.PauseTiming();
    const std::uint64_t p0 = g_agent->totals().passes.load();
    const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (g_agent->totals().passes.load() < p0 + 2) {
        if (std::chrono::steady_clock::now() > end) {
            fail(state, "the drain did not complete a pass within 30 s");
            return;
        }
        std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    state.ResumeTiming();
}

std::uint64_t g_batch = 0;  // events per thread between two waits for the drain; 0 = never wait

/// Runs `body` once per iteration. With a batch size, each thread records at most `batch` events,
/// then calls `wait` (which pauses timing) so the consumer can catch up: the buffer never fills and
/// no event takes the drop path, while the consumer keeps running on the other core throughout.
template <class Body, class Wait>
inline __attribute__((always_inline)) void run_batched(benchmark::State& state, std::uint64_t batch,
                                                       Body&& body, Wait&& wait) {
    if (batch == 0) {
        for (auto _ : state) body();
        return;
    }
    while (state.KeepRunningBatch(benchmark::IterationCount(batch))) {
        for (std::uint64_t k = 0; k < batch; ++k) body();
        wait();
    }
}

template <class Body>
inline __attribute__((always_inline)) void run_recording(benchmark::State& state, Body&& body) {
    run_batched(state, g_batch, body, [&state] { wait_for_drain_pass(state); });
}

/// Before each run of a probe benchmark: empty lanes, then take the counters' starting point.
void probe_setup(const benchmark::State&) {
    if (!wait_until_drained(std::chrono::seconds(30))) {
        std::fprintf(stderr, "probe_bench: the drain did not empty the lanes within 30 s\n");
        g_failed.store(true);
    }
    g_before = plugmon::probe_stats();
}

/// After the timed loop (every thread has left it: Google Benchmark's stop barrier), thread 0
/// reports the share of this run's events that were dropped and checks that each was counted.
void report_drops(benchmark::State& state) {
    if (state.thread_index() != 0) return;
    const plugmon::ProbeStats after = plugmon::probe_stats();
    const std::uint64_t dropped = after.events_dropped - g_before.events_dropped;
    const std::uint64_t recorded = (after.events_written - g_before.events_written) + dropped;
    const auto expected = std::uint64_t(state.iterations()) * std::uint64_t(state.threads());
    if (!after.attached) fail(state, "the probe is not attached to the in-process agent");
    if (recorded != expected) fail(state, "recorded events differ from iterations");
    if (g_batch != 0 && dropped != 0) fail(state, "a lane filled although the drain was waited for");
    state.counters["dropped_ratio"] = recorded ? double(dropped) / double(recorded) : 0.0;
}

// ---- the floor and the clocks ----

struct alignas(64) floor_slot {
    std::uint64_t word[8];
};
static_assert(sizeof(floor_slot) == 64);
constexpr std::size_t floor_slots = 16384;
thread_local floor_slot floor_ring[floor_slots];

/// Two TSC reads and one 64-byte store into a thread-local ring: what any timed event must cost.
void BM_floor(benchmark::State& state) {
    std::uint64_t i = 0;
    for (auto _ : state) {
        const std::uint64_t t0 = __rdtsc();
        const std::uint64_t t1 = __rdtsc();
        floor_slot& s = floor_ring[i & (floor_slots - 1)];
        s.word[0] = i + 1;
        s.word[1] = 0x0000000100000001ull;
        s.word[2] = 0x0000000300000002ull;
        s.word[3] = 0;
        s.word[4] = t0;
        s.word[5] = t1 - t0;
        s.word[6] = 0;
        s.word[7] = 0;
        ++i;
        benchmark::ClobberMemory();
    }
}

void BM_clock_rdtsc(benchmark::State& state) {
    for (auto _ : state) {
        std::uint64_t t = __rdtsc();
        benchmark::DoNotOptimize(t);
    }
}

void BM_clock_monotonic(benchmark::State& state) {
    for (auto _ : state) {
        timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        benchmark::DoNotOptimize(ts);
    }
}

// ---- plugmon ----

/// PLUGMON_QUERY: names interned once per call site.
void BM_probe_macro_scope(benchmark::State& state) {
    const plugmon::Plugin plugin = *g_plugin;
    run_recording(state, [&]() __attribute__((always_inline)) {
        PLUGMON_QUERY(q, plugin, "SELECT", "invoices");
    });
    report_drops(state);
}

/// query() with names held in runtime std::strings (the per-thread interning cache's hit path).
void BM_probe_query_scope_strings(benchmark::State& state) {
    const plugmon::Plugin plugin = *g_plugin;
    const std::string op = "SELECT", table = "invoices";
    run_recording(state, [&]() __attribute__((always_inline)) {
        auto q = plugin.query(op, table);
    });
    report_drops(state);
}

/// record_query(): the caller timed the query; one clock read for the start stamp.
void BM_probe_record_query(benchmark::State& state) {
    const plugmon::Plugin plugin = *g_plugin;
    const std::string op = "INSERT", table = "invoices";
    run_recording(state, [&]() __attribute__((always_inline)) {
        plugin.record_query(op, table, std::chrono::nanoseconds{1200}, 42, true);
    });
    report_drops(state);
}

/// count(): a named event counter, name in a runtime std::string.
void BM_probe_count(benchmark::State& state) {
    const plugmon::Plugin plugin = *g_plugin;
    const std::string event = "rate_limited";
    run_recording(state, [&]() __attribute__((always_inline)) {
        plugin.count(event);
    });
    report_drops(state);
}

// ---- statements (ratios to BM_probe_query_scope_strings, the same query() without a statement) ----

/// q.statement(plugmon::Statement): interned once, outside the loop.
void BM_probe_statement_prebuilt(benchmark::State& state) {
    const plugmon::Plugin plugin = *g_plugin;
    const std::string op = "SELECT", table = "invoices";
    const plugmon::Statement st(plugmon::bench::statement_200(0));
    run_recording(state, [&]() __attribute__((always_inline)) {
        auto q = plugin.query(op, table);
        q.statement(st);
    });
    report_drops(state);
}

/// Texts attached in turn, `texts` of them (one: the same text every call).
void statement_texts(benchmark::State& state, const std::vector<std::string>& texts) {
    const plugmon::Plugin plugin = *g_plugin;
    const std::string op = "SELECT", table = "invoices";
    std::size_t i = 0;
    run_recording(state, [&]() __attribute__((always_inline)) {
        auto q = plugin.query(op, table);
        q.statement(texts[i]);
        if (++i == texts.size()) i = 0;
    });
    report_drops(state);
}

void BM_probe_statement_same_200(benchmark::State& state) {
    statement_texts(state, plugmon::bench::rotating(plugmon::bench::statement_200, 1));
}
void BM_probe_statement_rotating16_200(benchmark::State& state) {
    statement_texts(state, plugmon::bench::rotating(plugmon::bench::statement_200, 16));
}
void BM_probe_statement_rotating16_2k(benchmark::State& state) {
    statement_texts(state, plugmon::bench::rotating(plugmon::bench::statement_2k, 16));
}

/// A new 200-byte text on every call, differing from the last in its literal only.
void BM_probe_statement_literals_200(benchmark::State& state) {
    const plugmon::Plugin plugin = *g_plugin;
    const std::string op = "SELECT", table = "invoices";
    plugmon::bench::literal_variants texts;
    run_recording(state, [&]() __attribute__((always_inline)) {
        auto q = plugin.query(op, table);
        q.statement(texts.next());
    });
    report_drops(state);
}

// ---- peers: prometheus-cpp ----
// Peers time the event with the same two TSC reads as the floor (the cheapest clock), so what
// differs is only how the event is recorded.

struct prometheus_peer {
    prometheus::Registry registry;
    prometheus::Family<prometheus::Histogram>& family =
        prometheus::BuildHistogram()
            .Name("bench_query_duration_seconds")
            .Help("query duration")
            .Register(registry);
    const prometheus::Histogram::BucketBoundaries buckets = pa::config::default_buckets();
    const prometheus::Labels labels{{"plugin", "bench"}, {"op", "SELECT"}, {"table", "invoices"}};
    prometheus::Histogram& shared = family.Add(labels, buckets);
};
prometheus_peer* g_prometheus = nullptr;

/// Histogram::Observe on one series cached by the caller, shared by every thread.
void BM_prometheus_histogram_shared(benchmark::State& state) {
    prometheus::Histogram& h = g_prometheus->shared;
    const double s_per_tick = g_ns_per_tick * 1e-9;
    for (auto _ : state) {
        const std::uint64_t t0 = __rdtsc();
        const std::uint64_t t1 = __rdtsc();
        h.Observe(double(t1 - t0) * s_per_tick);
    }
}

/// Family::Add(labels, buckets) per event (returns the existing series), then Observe. The label
/// set is built once outside the loop, which favours prometheus-cpp.
void BM_prometheus_histogram_add(benchmark::State& state) {
    prometheus_peer& p = *g_prometheus;
    const double s_per_tick = g_ns_per_tick * 1e-9;
    for (auto _ : state) {
        const std::uint64_t t0 = __rdtsc();
        const std::uint64_t t1 = __rdtsc();
        p.family.Add(p.labels, p.buckets).Observe(double(t1 - t0) * s_per_tick);
    }
}

// ---- peers: LTTng-UST ----

#ifdef PLUGMON_BENCH_LTTNG
std::atomic<std::uint64_t> g_lttng_events{0};  // tracepoints hit, to put the discarded count in proportion

/// An LTTng-UST tracepoint carrying the query event's fields, into a live session that
/// bench/run_probe_bench.sh creates (userspace channel, discard mode; it reports discarded events).
/// Without an enabled session the tracepoint is a predicted-not-taken branch: skipped, not timed.
void BM_lttng_tracepoint(benchmark::State& state) {
    if (!lttng_ust_tracepoint_enabled(plugmon_bench, query)) {
        state.SkipWithError("no LTTng session has plugmon_bench:query enabled "
                            "(bench/run_probe_bench.sh starts one)");
        return;
    }
    std::uint64_t i = 0;
    for (auto _ : state) {
        const std::uint64_t t0 = __rdtsc();
        const std::uint64_t t1 = __rdtsc();
        lttng_ust_tracepoint(plugmon_bench, query, 1u, 2u, 3u, 0u, std::uint8_t(0), t0, t1 - t0, i++);
    }
    g_lttng_events.fetch_add(i);
}
#endif

// ---- peers: Boost.Interprocess message queue ----

constexpr std::size_t mq_capacity = 16384;  // messages, as many as a default plugmon lane
std::string g_mq_name;
std::unique_ptr<bip::message_queue> g_mq;
std::atomic<bool> g_mq_stop{false};
std::atomic<std::uint64_t> g_mq_sent{0};      // messages queued, added per batch by senders
std::atomic<std::uint64_t> g_mq_received{0};  // messages taken, by the consumer
std::thread g_mq_consumer;

/// Before each run: a fresh queue and a consumer thread that receives until told to stop.
void mq_setup(const benchmark::State&) {
    bip::message_queue::remove(g_mq_name.c_str());
    g_mq = std::make_unique<bip::message_queue>(bip::create_only, g_mq_name.c_str(), mq_capacity,
                                                sizeof(floor_slot));
    g_mq_stop.store(false);
    g_mq_sent.store(0);
    g_mq_received.store(0);
    g_mq_consumer = std::thread([] {
        floor_slot m;
        bip::message_queue::size_type got = 0;
        unsigned prio = 0;
        while (!g_mq_stop.load(std::memory_order_relaxed)) {
            const auto deadline = boost::posix_time::microsec_clock::universal_time() +
                                  boost::posix_time::milliseconds(10);
            if (g_mq->timed_receive(&m, sizeof m, got, prio, deadline))
                g_mq_received.fetch_add(1, std::memory_order_release);
        }
    });
}

void mq_teardown(const benchmark::State&) {
    g_mq_stop.store(true);
    g_mq_consumer.join();
    g_mq.reset();
    bip::message_queue::remove(g_mq_name.c_str());
}

/// Timing paused: waits until the consumer has taken every message queued so far.
void wait_for_consumer(benchmark::State& state, std::uint64_t queued) {
    state.PauseTiming();
    const std::uint64_t target = g_mq_sent.fetch_add(queued) + queued;
    const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (g_mq_received.load(std::memory_order_acquire) < target) {
        if (std::chrono::steady_clock::now() > end) {
            fail(state, "the message queue's consumer did not catch up within 30 s");
            return;
        }
        std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    state.ResumeTiming();
}

/// try_send of one 64-byte message per event to a queue a consumer thread drains. Like the probe,
/// each thread sends at most its share of the queue, then waits for the consumer (timing paused);
/// a send that still finds the queue full fails and is counted (dropped_ratio).
void BM_boost_message_queue(benchmark::State& state) {
    bip::message_queue& mq = *g_mq;
    const std::uint64_t batch = g_batch == 0 ? 0 : mq_capacity / 8 * 7 / std::uint64_t(state.threads());
    std::uint64_t failed = 0, i = 0, sent = 0;
    floor_slot m{};
    run_batched(
        state, batch,
        [&]() __attribute__((always_inline)) {
            const std::uint64_t t0 = __rdtsc();
            const std::uint64_t t1 = __rdtsc();
            m.word[0] = ++i;
            m.word[4] = t0;
            m.word[5] = t1 - t0;
            if (mq.try_send(&m, sizeof m, 0))
                ++sent;
            else
                ++failed;
        },
        [&] {
            wait_for_consumer(state, sent);
            sent = 0;
        });
    // Each thread runs the same number of iterations, so the mean of the ratios is the ratio.
    state.counters["dropped_ratio"] = benchmark::Counter(
        state.iterations() ? double(failed) / double(state.iterations()) : 0.0,
        benchmark::Counter::kAvgThreads);
}

/// Records from the calling thread until `n` events were published (faults the lane's pages in).
void touch_lane(std::uint64_t n) {
    const std::uint64_t target = plugmon::probe_stats().events_written + n;
    while (plugmon::probe_stats().events_written < target) {
        for (int k = 0; k < 4096; ++k) g_plugin->count("warm_up");
        std::this_thread::sleep_for(std::chrono::microseconds(200));  // let the drain keep up
    }
}

}  // namespace

int main(int argc, char** argv) {
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 2;

    // The probe reads its settings once, at first use: everything below happens before that.
    char tmpl[] = "/tmp/plugmon-bench-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) {
        std::perror("probe_bench: mkdtemp");
        return 1;
    }
    const std::string runtime_dir = tmpl;
    ::setenv("PLUGMON_RUNTIME_DIR", runtime_dir.c_str(), 1);  // always our own agent
    ::setenv("PLUGMON_LANE_SLOTS", "1048576", 0);
    ::setenv("PLUGMON_LANES", "8", 0);
    ::setenv("PLUGMON_EXIT_WAIT_MS", "0", 0);
    const std::uint64_t lane_slots = env_u64("PLUGMON_LANE_SLOTS", 1048576);
    g_batch = env_u64("PLUGMON_BENCH_EVENTS", lane_slots / 8 * 7);
    g_mq_name = "plugmon_bench_mq_" + std::to_string(::getpid());

    spdlog::set_level(spdlog::level::warn);
    g_ns_per_tick = pa::measure_ns_per_tick(std::chrono::milliseconds(50));
    int status = 0;
    try {
        inproc_agent agent(runtime_dir, pa::config{}.drain_interval, g_ns_per_tick);
        g_agent = &agent;
        g_plugin.emplace("bench");
        if (!plugmon::flush_to_agent(std::chrono::seconds(5))) {
            std::fprintf(stderr, "probe_bench: the probe did not register with the in-process agent\n");
            status = 1;
        } else {
            // Fault in the lanes the benchmark threads will take (the main thread keeps the first;
            // a worker thread takes the next free one) so no run pays for first-touch page faults.
            const std::uint64_t warm = std::min<std::uint64_t>(lane_slots, g_batch ? g_batch : lane_slots);
            touch_lane(warm);
            std::thread(touch_lane, warm).join();
            prometheus_peer prom;
            g_prometheus = &prom;

            auto* f = benchmark::RegisterBenchmark("BM_floor", BM_floor);
            auto* cr = benchmark::RegisterBenchmark("BM_clock_rdtsc", BM_clock_rdtsc);
            auto* cm = benchmark::RegisterBenchmark("BM_clock_monotonic", BM_clock_monotonic);
            auto* pm = benchmark::RegisterBenchmark("BM_probe_macro_scope", BM_probe_macro_scope);
            auto* ps = benchmark::RegisterBenchmark("BM_probe_query_scope_strings",
                                                    BM_probe_query_scope_strings);
            auto* pr = benchmark::RegisterBenchmark("BM_probe_record_query", BM_probe_record_query);
            auto* pc = benchmark::RegisterBenchmark("BM_probe_count", BM_probe_count);
            auto* hs = benchmark::RegisterBenchmark("BM_prometheus_histogram_shared",
                                                    BM_prometheus_histogram_shared);
            auto* ha = benchmark::RegisterBenchmark("BM_prometheus_histogram_add",
                                                    BM_prometheus_histogram_add);
            auto* mq = benchmark::RegisterBenchmark("BM_boost_message_queue", BM_boost_message_queue);
            auto* sp = benchmark::RegisterBenchmark("BM_probe_statement_prebuilt",
                                                    BM_probe_statement_prebuilt);
            auto* ss = benchmark::RegisterBenchmark("BM_probe_statement_same_200",
                                                    BM_probe_statement_same_200);
            auto* sr = benchmark::RegisterBenchmark("BM_probe_statement_rotating16_200",
                                                    BM_probe_statement_rotating16_200);
            auto* sl = benchmark::RegisterBenchmark("BM_probe_statement_literals_200",
                                                    BM_probe_statement_literals_200);
            auto* sk = benchmark::RegisterBenchmark("BM_probe_statement_rotating16_2k",
                                                    BM_probe_statement_rotating16_2k);
            for (auto* b : {f, cr, cm, pm, ps, pr, pc, hs, ha, mq, sp, ss, sr, sl, sk})
                b->Threads(1)->Threads(2);
#ifdef PLUGMON_BENCH_LTTNG
            benchmark::RegisterBenchmark("BM_lttng_tracepoint", BM_lttng_tracepoint)->Threads(1)->Threads(2);
#endif
            for (auto* b : {pm, ps, pr, pc, sp, ss, sr, sl, sk}) b->Setup(probe_setup);
            mq->Setup(mq_setup)->Teardown(mq_teardown);

            benchmark::RunSpecifiedBenchmarks();
#ifdef PLUGMON_BENCH_LTTNG
            std::fprintf(stderr, "probe_bench: lttng tracepoints hit: %llu\n",
                         static_cast<unsigned long long>(g_lttng_events.load()));
#endif

            // Exact accounting over the whole program: what the probe wrote was drained, and what
            // it dropped reached the agent as dropped (the drain collects drops every 10 ms).
            const bool drained = wait_until_drained(std::chrono::seconds(30));
            const plugmon::ProbeStats s = plugmon::probe_stats();
            for (int k = 0; k < 1000 && agent.totals().full.get() < s.events_dropped; ++k)
                std::this_thread::sleep_for(std::chrono::milliseconds(5));
            const std::uint64_t got = agent.totals().drained.get(), full = agent.totals().full.get();
            if (!drained || s.events_written != got || s.events_dropped != full) {
                std::fprintf(stderr, "probe_bench: written %llu, drained %llu; dropped %llu, agent full %llu\n",
                             static_cast<unsigned long long>(s.events_written),
                             static_cast<unsigned long long>(got),
                             static_cast<unsigned long long>(s.events_dropped),
                             static_cast<unsigned long long>(full));
                status = 1;
            }
            g_prometheus = nullptr;
        }
        g_agent = nullptr;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "probe_bench: %s\n", e.what());
        status = 1;
    }
    benchmark::Shutdown();
    std::error_code ec;
    std::filesystem::remove_all(runtime_dir, ec);
    if (g_failed.load()) status = 1;
    return status;
}
