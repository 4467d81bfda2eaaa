// Drain + aggregate throughput over real segments, on the agent's one drain thread: a forked
// child fills its lanes while no agent exists, then a fresh drain is timed emptying them.
// Usage: drain_bench [events_per_thread] [threads] [repetitions]; prints each run and the median.
#include <plugmon/probe.hpp>

#include "aggregate/series.hpp"
#include "config/config.hpp"
#include "ingest/drainer.hpp"
#include "ingest/intake.hpp"
#include "common/tsc.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include <sys/wait.h>
#include <unistd.h>

namespace pa = plugmon::agent;
using clock_type = std::chrono::steady_clock;

namespace {

// The child: record while no agent listens, then wait (bounded) to be registered and exit.
[[noreturn]] void produce(std::uint64_t per_thread, unsigned threads) {
    std::vector<std::thread> ts;
    for (unsigned t = 0; t < threads; ++t)
        ts.emplace_back([per_thread, t] {
            const char* ops[] = {"SELECT", "INSERT", "UPDATE", "DELETE"};
            const char* tables[] = {"t0", "t1", "t2", "t3", "t4", "t5", "t6", "t7"};
            plugmon::Plugin plugins[] = {plugmon::Plugin{"p" + std::to_string(t) + "a"},
                                         plugmon::Plugin{"p" + std::to_string(t) + "b"}};
            for (std::uint64_t i = 0; i < per_thread; ++i)
                plugins[i & 1].record_query(ops[(i >> 1) & 3], tables[(i >> 3) & 7],
                                            std::chrono::nanoseconds(1000 + (i & 4095) * 97), i & 31, (i & 255) != 0);
        });
    for (auto& t : ts) t.join();
    const auto s = plugmon::probe_stats();
    if (s.events_dropped != 0) {
        std::fprintf(stderr, "drain_bench: the child dropped %llu events: lanes too small\n",
                     (unsigned long long)s.events_dropped);
        std::_Exit(3);
    }
    std::printf("ready\n");
    std::fflush(stdout);
    plugmon::flush_to_agent(std::chrono::seconds(60));
    std::this_thread::sleep_for(std::chrono::seconds(60));  // the parent kills it when done
    std::_Exit(0);
}

double one_run(std::uint64_t per_thread, unsigned threads, const std::string& dir) {
    int pipefd[2];
    if (::pipe(pipefd) != 0) std::exit(1);
    const pid_t child = ::fork();
    if (child == 0) {
        ::dup2(pipefd[1], 1);
        ::setenv("PLUGMON_RUNTIME_DIR", dir.c_str(), 1);
        produce(per_thread, threads);
    }
    ::close(pipefd[1]);
    char buf[16] = {};
    if (::read(pipefd[0], buf, sizeof buf) <= 0) {
        std::fprintf(stderr, "drain_bench: the producer failed\n");
        std::exit(1);
    }
    ::close(pipefd[0]);

    pa::series_registry store(pa::bucket_bounds::from_seconds(pa::config::default_buckets(),
                                                           pa::config::default_buckets()));
    pa::drain::options dopt;
    dopt.idle_sleep = std::chrono::microseconds(50);
    dopt.ns_per_tick = pa::measure_ns_per_tick();
    pa::drain d(store, dopt);
    boost::asio::io_context io;
    pa::intake::options o;
    o.runtime_dir = dir;
    pa::intake in(io, o, d);
    d.start();
    in.start();
    std::thread io_thread([&] { io.run(); });
    const std::uint64_t total = per_thread * threads;
    // Time from the producer's registration to the last event aggregated.
    while (d.producers().empty()) std::this_thread::yield();
    const auto t0 = clock_type::now();
    while (d.totals().drained.get() < total) std::this_thread::sleep_for(std::chrono::microseconds(100));
    const double secs = std::chrono::duration<double>(clock_type::now() - t0).count();
    ::kill(child, SIGKILL);
    ::waitpid(child, nullptr, 0);
    boost::asio::post(io, [&] { in.stop(); });
    d.stop(std::chrono::seconds(5));
    io.stop();
    io_thread.join();
    return double(total) / secs;
}

}  // namespace

int main(int argc, char** argv) {
    const std::uint64_t per_thread = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 4'000'000;
    const unsigned threads = argc > 2 ? unsigned(std::atoi(argv[2])) : 2;
    const int reps = argc > 3 ? std::atoi(argv[3]) : 5;
    // Lanes big enough to hold the whole run without an agent (pages are touched as they fill).
    std::uint32_t slots = 1u << 16;
    while (slots < per_thread && slots < (1u << 22)) slots <<= 1;
    ::setenv("PLUGMON_LANE_SLOTS", std::to_string(slots).c_str(), 1);
    ::setenv("PLUGMON_RECONNECT_MS", "10", 1);
    ::setenv("PLUGMON_LANES", std::to_string(threads).c_str(), 1);
    const auto dir = std::filesystem::temp_directory_path() / ("plugmon-drain-bench-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    std::vector<double> rates;
    for (int r = 0; r < reps; ++r) {
        rates.push_back(one_run(per_thread, threads, dir.string()));
        std::printf("run %d: %.2f M events/s\n", r + 1, rates.back() / 1e6);
    }
    std::sort(rates.begin(), rates.end());
    std::printf("median of %d: %.2f M events/s drained and aggregated on one drain thread "
                "(%llu events over %u lanes, 2 plugins x 4 ops x 8 tables)\n",
                reps, rates[rates.size() / 2] / 1e6, (unsigned long long)(per_thread * threads), threads);
    std::filesystem::remove_all(dir);
}
