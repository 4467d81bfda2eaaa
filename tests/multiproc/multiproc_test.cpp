// Real processes end to end: plugmon-loadgen children record through the probe, a real
// plugmon-agent drains them, and the tests compare what /metrics and the API say with what every
// child counted. Producers and the agent are killed with SIGKILL where the scenario says so.
#include "support/harness.hpp"

#include <plugmon/probe.hpp>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <csignal>
#include <filesystem>
#include <random>
#include <set>
#include <fstream>
#include <sys/wait.h>
#include <fcntl.h>
#include <sstream>
#include <sys/mman.h>
#include <thread>
#include <unistd.h>

using namespace plugmon::test;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

json producers(const agent& a) { return json::parse(a.producers_json()); }

/// The finished-producer record of `pid` in the agent's API, or null.
json finished_record(const agent& a, pid_t pid) {
    const json p = producers(a);
    for (const auto& f : p["finished"])
        if (f["pid"].get<pid_t>() == pid) return f;
    return json();
}

bool wait_finished(const agent& a, const std::vector<pid_t>& pids, std::chrono::milliseconds t = 30s) {
    return wait_until(
        [&] {
            for (pid_t pid : pids)
                if (finished_record(a, pid).is_null()) return false;
            return true;
        },
        t);
}

std::vector<pid_t> pids_of(const std::vector<json>& children) {
    std::vector<pid_t> out;
    for (const auto& c : children) out.push_back(c["pid"].get<pid_t>());
    return out;
}

}  // namespace

TEST(multiproc, four_processes_account_exactly_per_plugin_and_overall) {
    temp_dir dir;
    const std::string rt = dir.path() + "/rt";
    agent a(rt, dir.path() + "/agent.log");
    loadgen_run lg(dir, "lg", rt,
                   {"--processes", "4", "--threads", "2", "--events", "1000000", "--plugins", "1",
                    "--plugin-prefix", "acct{process}-", "--tenants", "2", "--error-ratio", "0.01",
                    "--wait-attached", "10s"});
    ASSERT_EQ(lg.finish(), 0) << lg.log();
    ASSERT_EQ(lg.children().size(), 4u);
    ASSERT_TRUE(wait_finished(a, pids_of(lg.children()))) << a.producers_json();

    const metrics m = a.scrape();
    std::uint64_t recorded = 0, written = 0, dropped = 0;
    for (const auto& c : lg.children()) {
        const auto rec = c["recorded"].get<std::uint64_t>();
        const auto wr = c["written"].get<std::uint64_t>();
        const auto dr = c["dropped"].get<std::uint64_t>();
        EXPECT_EQ(rec, 2'000'000u);
        EXPECT_EQ(wr + dr, rec) << "the probe must count every event it was given";
        recorded += rec;
        written += wr;
        dropped += dr;
        // Each process hosts one plugin of its own, so per plugin: queries = recorded - dropped.
        const std::string plugin = "acct" + std::to_string(c["index"].get<int>()) + "-0";
        EXPECT_EQ(std::uint64_t(m.sum("plugmon_queries_total", {{"plugin", plugin}})), rec - dr) << plugin;
        EXPECT_EQ(std::uint64_t(m.sum("plugmon_query_duration_seconds_count", {{"plugin", plugin}})), rec - dr);
        const json f = finished_record(a, c["pid"].get<pid_t>());
        EXPECT_EQ(f["drained"].get<std::uint64_t>(), wr);
        EXPECT_EQ(f["dropped_full"].get<std::uint64_t>(), dr);
        EXPECT_EQ(f["torn"].get<std::uint64_t>(), 0u);
        EXPECT_EQ(f["invalid"].get<std::uint64_t>(), 0u);
    }
    EXPECT_EQ(recorded, 8'000'000u);
    const auto drained = std::uint64_t(m.sum("plugmon_agent_events_drained_total"));
    const auto full = std::uint64_t(m.sum("plugmon_ring_events_dropped_total", {{"reason", "full"}}));
    EXPECT_EQ(drained, written);
    EXPECT_EQ(full, dropped);
    EXPECT_EQ(m.sum("plugmon_ring_events_dropped_total", {{"reason", "torn"}}), 0);
    EXPECT_EQ(m.sum("plugmon_ring_events_dropped_total", {{"reason", "invalid"}}), 0);
    EXPECT_EQ(drained + full, recorded);
    std::printf("[ figures  ] recorded %llu = aggregated %llu + dropped full %llu (%.2f%%)\n",
                (unsigned long long)recorded, (unsigned long long)drained, (unsigned long long)full,
                100.0 * double(full) / double(recorded));
    std::string out;
    EXPECT_EQ(promtool_check_metrics(dir.path(), a.metrics_text(), out), 0) << out;
    EXPECT_EQ(a.stop(), 0);
}

TEST(multiproc, producer_killed_mid_run_leaves_the_agent_and_the_survivors_exact) {
    temp_dir dir;
    const std::string rt = dir.path() + "/rt";
    agent a(rt, dir.path() + "/agent.log");
    loadgen_run survivors(dir, "survivors", rt,
                          {"--processes", "2", "--threads", "1", "--duration", "3s", "--rate", "50000",
                           "--plugins", "1", "--plugin-prefix", "survivor{process}-", "--wait-attached", "10s"});
    const std::string progress = dir.path() + "/victim.progress";
    loadgen_run victim(dir, "victim", rt,
                       {"--processes", "1", "--threads", "2", "--duration", "30s", "--plugins", "1",
                        "--plugin-prefix", "victim-", "--wait-attached", "10s", "--allow-kill",
                        "--print-pids", "--progress-file", progress});
    ASSERT_TRUE(wait_until([&] { return !victim.pids().empty(); }, 10s)) << victim.log();
    const pid_t vpid = victim.pids().front();
    // Kill it while it records flat out, once it has recorded something.
    auto victim_progress = [&] {
        const int fd = ::open(progress.c_str(), O_RDONLY);
        std::uint64_t words[16] = {};
        if (fd >= 0) {
            (void)::pread(fd, words, sizeof words, 0);
            ::close(fd);
        }
        return words[0] + words[8];  // thread 0 and thread 1, 64 bytes apart
    };
    ASSERT_TRUE(wait_until([&] { return victim_progress() > 200000; }, 20s));
    ASSERT_EQ(::kill(vpid, SIGKILL), 0);
    ASSERT_EQ(victim.finish(), 0) << victim.log();
    ASSERT_EQ(survivors.finish(), 0) << survivors.log();

    ASSERT_TRUE(wait_finished(a, {vpid})) << a.producers_json();
    ASSERT_TRUE(wait_finished(a, pids_of(survivors.children()))) << a.producers_json();
    const std::uint64_t attempted = victim_progress();
    const json v = finished_record(a, vpid);
    const auto accounted = v["drained"].get<std::uint64_t>() + v["torn"].get<std::uint64_t>() +
                           v["dropped_full"].get<std::uint64_t>();
    // Per-thread lanes publish whole events only: at most the one in flight per thread is missing.
    EXPECT_LE(accounted, attempted);
    EXPECT_GE(accounted + 2, attempted);
    EXPECT_EQ(v["invalid"].get<std::uint64_t>(), 0u);

    const metrics m = a.scrape();
    for (const auto& c : survivors.children()) {
        const std::string plugin = "survivor" + std::to_string(c["index"].get<int>()) + "-0";
        EXPECT_EQ(std::uint64_t(m.sum("plugmon_queries_total", {{"plugin", plugin}})),
                  c["recorded"].get<std::uint64_t>() - c["dropped"].get<std::uint64_t>());
    }
    EXPECT_EQ(std::uint64_t(m.sum("plugmon_queries_total", {{"plugin", "victim-0"}})),
              v["drained"].get<std::uint64_t>());
    int status = 0;
    EXPECT_TRUE(http_get(a.port(), "/healthz", &status).has_value());
    EXPECT_EQ(status, 200);
    EXPECT_EQ(a.stop(), 0);
}

TEST(multiproc, agent_killed_and_restarted_mid_run_loses_nothing) {
    temp_dir dir;
    const std::string rt = dir.path() + "/rt";
    auto first = std::make_unique<agent>(rt, dir.path() + "/agent1.log");
    // 20k events/s per process: the 16384-slot lanes overflow during the second the agent is
    // down, so both the drained backlog and the "full" drops are exercised.
    loadgen_run lg(dir, "lg", rt,
                   {"--processes", "2", "--threads", "1", "--duration", "5s", "--rate", "20000",
                    "--plugins", "1", "--plugin-prefix", "restart{process}-", "--wait-attached", "10s"});
    std::this_thread::sleep_for(1500ms);
    first->proc().signal(SIGKILL);
    ASSERT_TRUE(first->proc().wait(10s).has_value());
    std::this_thread::sleep_for(1200ms);
    agent second(rt, dir.path() + "/agent2.log");
    const auto t0 = std::chrono::steady_clock::now();
    ASSERT_EQ(lg.finish(), 0) << lg.log();
    // Producers never blocked: the 5 s run ended on time although the agent was gone for >1 s.
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 10s);
    ASSERT_TRUE(wait_finished(second, pids_of(lg.children()))) << second.producers_json();

    const metrics m = second.scrape();
    for (const auto& c : lg.children()) {
        const auto written = c["written"].get<std::uint64_t>();
        const auto dropped = c["dropped"].get<std::uint64_t>();
        EXPECT_EQ(written + dropped, c["recorded"].get<std::uint64_t>());
        EXPECT_GE(c["registrations"].get<std::uint64_t>(), 2u) << "it must re-register";
        const json f = finished_record(second, c["pid"].get<pid_t>());
        // Every written event was consumed: by the first agent before its death, or by the second.
        EXPECT_EQ(f["consumed_at_attach"].get<std::uint64_t>() + f["drained"].get<std::uint64_t>(), written);
        const std::string plugin = "restart" + std::to_string(c["index"].get<int>()) + "-0";
        EXPECT_EQ(std::uint64_t(m.sum("plugmon_queries_total", {{"plugin", plugin}})),
                  f["drained"].get<std::uint64_t>());
        std::printf("[ figures  ] pid %d: recorded %llu, consumed by agent 1 %llu, by agent 2 %llu, dropped full %llu\n",
                    c["pid"].get<int>(), (unsigned long long)c["recorded"].get<std::uint64_t>(),
                    (unsigned long long)f["consumed_at_attach"].get<std::uint64_t>(),
                    (unsigned long long)f["drained"].get<std::uint64_t>(), (unsigned long long)dropped);
    }
    EXPECT_EQ(second.stop(), 0);
}

TEST(multiproc, events_recorded_before_the_agent_starts_are_drained) {
    temp_dir dir;
    const std::string rt = dir.path() + "/rt";
    loadgen_run lg(dir, "lg", rt,
                   {"--processes", "1", "--threads", "1", "--events", "5000", "--plugins", "1",
                    "--plugin-prefix", "early-", "--linger-attached", "20s"});
    // 5000 events take milliseconds; the child then lingers. The report it wrote before
    // lingering says whether an agent was attached while it recorded (it must not be).
    std::this_thread::sleep_for(1s);
    agent a(rt, dir.path() + "/agent.log");
    ASSERT_EQ(lg.finish(), 0) << lg.log();
    ASSERT_EQ(lg.children().size(), 1u);
    const auto& c = lg.children()[0];
    EXPECT_EQ(c["attached"].get<bool>(), false) << "the agent must have come after the recording";
    EXPECT_EQ(c["dropped"].get<std::uint64_t>(), 0u);
    ASSERT_TRUE(wait_finished(a, pids_of(lg.children()))) << a.producers_json();
    EXPECT_EQ(std::uint64_t(a.scrape().sum("plugmon_queries_total", {{"plugin", "early-0"}})), 5000u);
    EXPECT_EQ(a.stop(), 0);
}

TEST(multiproc, short_lived_process_hands_its_segment_over_at_exit) {
    temp_dir dir;
    const std::string rt = dir.path() + "/rt";
    agent a(rt, dir.path() + "/agent.log");
    // No --wait-attached: the process records a million events at once and returns from main.
    loadgen_run lg(dir, "lg", rt,
                   {"--processes", "1", "--threads", "1", "--events", "1000000", "--plugins", "1",
                    "--plugin-prefix", "brief-"});
    ASSERT_EQ(lg.finish(), 0) << lg.log();
    const auto& c = lg.children().at(0);
    ASSERT_TRUE(wait_finished(a, pids_of(lg.children()))) << "the exited process never reached the agent";
    const json f = finished_record(a, c["pid"].get<pid_t>());
    EXPECT_EQ(f["consumed_at_attach"].get<std::uint64_t>(), 0u);
    EXPECT_EQ(f["drained"].get<std::uint64_t>(), c["written"].get<std::uint64_t>());
    EXPECT_EQ(f["dropped_full"].get<std::uint64_t>(), c["dropped"].get<std::uint64_t>());
    EXPECT_EQ(f["drained"].get<std::uint64_t>() + f["dropped_full"].get<std::uint64_t>(), 1'000'000u);
    EXPECT_EQ(std::uint64_t(a.scrape().sum("plugmon_queries_total", {{"plugin", "brief-0"}})),
              c["written"].get<std::uint64_t>());
    EXPECT_EQ(a.stop(), 0);
}

TEST(multiproc, bad_configuration_exits_2_naming_the_key) {
    temp_dir dir;
    process p({agent_binary(), "--flush-interval", "10 parsecs"}, {}, dir.path() + "/out", dir.path() + "/err");
    const auto st = p.wait(20s);
    ASSERT_TRUE(st.has_value());
    EXPECT_TRUE(WIFEXITED(*st));
    EXPECT_EQ(WEXITSTATUS(*st), 2);
    EXPECT_NE(read_file(dir.path() + "/err").find("flush_interval"), std::string::npos);
}

TEST(multiproc, forked_child_records_into_its_own_segment_and_parent_stays_attached) {
#if defined(__SANITIZE_THREAD__)
    GTEST_SKIP() << "ThreadSanitizer cannot start threads in a child of a multi-threaded fork; "
                    "this test runs in the default and ASan builds";
#endif
    temp_dir dir;
    const std::string rt = dir.path() + "/rt";
    agent a(rt, dir.path() + "/agent.log");
    // This test's own process is the producer (the probe reads its environment at first use).
    ::setenv("PLUGMON_RUNTIME_DIR", rt.c_str(), 1);
    plugmon::Plugin plugin{"forker"};
    { auto q = plugin.query("SELECT", "before_fork"); }
    ASSERT_TRUE(plugmon::flush_to_agent(10s));
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        // Names interned by the parent ("forker") keep their ids; new ones are added here.
        for (int i = 0; i < 1000; ++i) {
            auto q = plugin.query("SELECT", "in_child");
            q.rows(1);
        }
        const auto s = plugmon::probe_stats();
        std::exit(s.events_written + s.events_dropped == 1000 ? 0 : 3);  // exit: hand-over runs
    }
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 0) << "the child's probe must count only its own events";
    ASSERT_TRUE(wait_finished(a, {child})) << a.producers_json();
    EXPECT_EQ(finished_record(a, child)["drained"].get<std::uint64_t>(), 1000u);
    const metrics m = a.scrape();
    EXPECT_EQ(m.sum("plugmon_queries_total", {{"plugin", "forker"}, {"table", "in_child"}}), 1000);
    EXPECT_EQ(m.sum("plugmon_queries_total", {{"plugin", "forker"}, {"table", "before_fork"}}), 1);
    // The child closed its copy of the parent's socket: the parent is still registered.
    bool parent_attached = false;
    const json live = producers(a);
    for (const auto& p : live["producers"])
        if (p["pid"].get<pid_t>() == ::getpid() && p["state"] == "attached") parent_attached = true;
    EXPECT_TRUE(parent_attached) << a.producers_json();
    EXPECT_TRUE(plugmon::probe_stats().attached);
}

namespace {

std::size_t count_fds(pid_t pid) {
    std::size_t n = 0;
    for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd")) ++n;
    return n;
}

std::size_t count_segment_mappings(pid_t pid) {
    std::istringstream in(read_file("/proc/" + std::to_string(pid) + "/maps"));
    std::size_t n = 0;
    std::string line;
    while (std::getline(in, line))
        if (line.find("plugmon-segment") != std::string::npos) ++n;
    return n;
}

std::uint64_t read_progress(const std::string& path, unsigned index) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    std::uint64_t v = 0;
    if (fd >= 0) {
        (void)::pread(fd, &v, sizeof v, off_t(index) * 64);
        ::close(fd);
    }
    return v;
}

}  // namespace

TEST(multiproc, kill_matrix_never_stalls_the_agent_and_leaks_nothing) {
    temp_dir dir;
    const std::string rt = dir.path() + "/rt";
    agent a(rt, dir.path() + "/agent.log");
    const pid_t agent_pid = a.proc().pid();
    const std::size_t fds_before = count_fds(agent_pid);
    ASSERT_EQ(count_segment_mappings(agent_pid), 0u);

    loadgen_run honest(dir, "honest", rt,
                       {"--processes", "2", "--threads", "1", "--duration", "600s", "--rate", "20000",
                        "--plugins", "1", "--plugin-prefix", "steady{process}-", "--wait-attached", "10s"});
    const char* env_rounds = std::getenv("PLUGMON_KILL_ROUNDS");
    const int rounds = env_rounds ? std::atoi(env_rounds) : 50;
    constexpr unsigned per_round = 4;
    std::mt19937 rng(12345);
    struct victim {
        pid_t pid;
        std::uint64_t attempted;
    };
    std::vector<victim> victims;
    for (int r = 0; r < rounds; ++r) {
        const std::string progress = dir.path() + "/p" + std::to_string(r);
        loadgen_run lg(dir, "kill" + std::to_string(r), rt,
                       {"--processes", std::to_string(per_round), "--threads", "1", "--duration", "60s",
                        "--rate", std::to_string(200000 + 200000 * (r % 5)), "--plugins", "1",
                        "--plugin-prefix", "victim-", "--wait-attached", "10s", "--allow-kill",
                        "--print-pids", "--progress-file", progress});
        ASSERT_TRUE(wait_until([&] { return lg.pids().size() == per_round; }, 20s)) << lg.log();
        const auto pids = lg.pids();
        // Kill each child at its own random moment, most of them while recording.
        std::vector<int> delays_ms;
        for (unsigned k = 0; k < per_round; ++k) delays_ms.push_back(int(rng() % 60));
        std::sort(delays_ms.begin(), delays_ms.end());
        const auto t0 = std::chrono::steady_clock::now();
        for (unsigned k = 0; k < per_round; ++k) {
            std::this_thread::sleep_until(t0 + std::chrono::milliseconds(delays_ms[k]));
            ASSERT_EQ(::kill(pids[k], SIGKILL), 0);
        }
        ASSERT_EQ(lg.finish(), 0) << lg.log();
        for (unsigned k = 0; k < per_round; ++k) victims.push_back({pids[k], read_progress(progress, k)});
    }
    ASSERT_GE(victims.size(), 200u * unsigned(rounds) / 50);

    // The agent kept draining throughout: the honest producers are still attached and counted.
    ASSERT_TRUE(wait_until(
        [&] {
            const json live = producers(a);
            for (const auto& p : live["producers"])
                if (p["state"] != "attached") return false;
            return live["producers"].size() == 2;  // only the two honest producers remain
        },
        30s))
        << a.producers_json();
    std::uint64_t attempted_total = 0, accounted_total = 0, torn_total = 0;
    for (const auto& v : victims) {
        const json f = finished_record(a, v.pid);
        if (f.is_null()) {  // killed before it ever registered: it recorded nothing
            EXPECT_EQ(v.attempted, 0u) << "pid " << v.pid;
            continue;
        }
        const auto accounted = f["drained"].get<std::uint64_t>() + f["torn"].get<std::uint64_t>() +
                               f["dropped_full"].get<std::uint64_t>();
        // Exactly what it recorded, but for the one event in flight when SIGKILL landed.
        EXPECT_LE(accounted, v.attempted) << "pid " << v.pid;
        EXPECT_GE(accounted + 1, v.attempted) << "pid " << v.pid;
        EXPECT_EQ(f["invalid"].get<std::uint64_t>(), 0u);
        attempted_total += v.attempted;
        accounted_total += accounted;
        torn_total += f["torn"].get<std::uint64_t>();
    }
    honest.proc().signal(SIGTERM);  // a clean early stop: the children report and exit normally
    ASSERT_EQ(honest.finish(), 0) << honest.log();
    ASSERT_TRUE(wait_finished(a, pids_of(honest.children()))) << a.producers_json();
    const metrics m = a.scrape();
    for (const auto& c : honest.children()) {
        const std::string plugin = "steady" + std::to_string(c["index"].get<int>()) + "-0";
        EXPECT_EQ(std::uint64_t(m.sum("plugmon_queries_total", {{"plugin", plugin}})),
                  c["recorded"].get<std::uint64_t>() - c["dropped"].get<std::uint64_t>());
    }
    // Every segment was released: descriptors and mappings are back to where they started.
    EXPECT_TRUE(wait_until([&] { return count_segment_mappings(agent_pid) == 0; }, 10s));
    EXPECT_TRUE(wait_until([&] { return count_fds(agent_pid) == fds_before; }, 10s))
        << count_fds(agent_pid) << " descriptors, " << fds_before << " before";
    std::printf("[ figures  ] %zu producers killed; attempted %llu, accounted %llu (torn %llu)\n",
                victims.size(), (unsigned long long)attempted_total, (unsigned long long)accounted_total,
                (unsigned long long)torn_total);
    EXPECT_EQ(a.stop(), 0);
}

TEST(multiproc, agent_frozen_with_sigstop_never_blocks_producers_and_counts_the_drops) {
    temp_dir dir;
    const std::string rt = dir.path() + "/rt";
    agent a(rt, dir.path() + "/agent.log");
    // 200 k/s per process: five frozen seconds are 1 M events against 16384-slot lanes.
    loadgen_run lg(dir, "lg", rt,
                   {"--processes", "2", "--threads", "1", "--duration", "8s", "--rate", "200000",
                    "--plugins", "1", "--plugin-prefix", "frozen{process}-", "--wait-attached", "10s",
                    "--measure-latency"});
    ASSERT_TRUE(wait_until([&] { return a.scrape().sum("plugmon_agent_events_drained_total") > 100000; }, 20s));
    a.proc().signal(SIGSTOP);
    std::this_thread::sleep_for(5s);
    a.proc().signal(SIGCONT);
    ASSERT_EQ(lg.finish(), 0) << lg.log();
    ASSERT_TRUE(wait_finished(a, pids_of(lg.children()))) << a.producers_json();
    const metrics m = a.scrape();
    std::uint64_t dropped = 0, worst_ns = 0;
    for (const auto& c : lg.children()) {
        const std::string plugin = "frozen" + std::to_string(c["index"].get<int>()) + "-0";
        EXPECT_EQ(std::uint64_t(m.sum("plugmon_queries_total", {{"plugin", plugin}})),
                  c["recorded"].get<std::uint64_t>() - c["dropped"].get<std::uint64_t>());
        const json f = finished_record(a, c["pid"].get<pid_t>());
        EXPECT_EQ(f["dropped_full"].get<std::uint64_t>(), c["dropped"].get<std::uint64_t>());
        dropped += c["dropped"].get<std::uint64_t>();
        worst_ns = std::max(worst_ns, c["max_record_ns"].get<std::uint64_t>());
    }
    EXPECT_GT(dropped, 0u) << "the freeze must have filled the lanes";
    EXPECT_EQ(std::uint64_t(m.sum("plugmon_ring_events_dropped_total", {{"reason", "full"}})), dropped);
    // A producer that waited for the agent would have taken about 5 s for one call. The bound
    // leaves room for a preempted thread on a shared 2-core machine; the figure is printed.
    EXPECT_LT(worst_ns, 1'000'000'000u);
    std::printf("[ figures  ] frozen 5 s: dropped full %llu, slowest single record call %.1f us\n",
                (unsigned long long)dropped, double(worst_ns) / 1e3);
    EXPECT_EQ(a.stop(), 0);
}

// ---- aggregation end to end (issue: percentiles, slow queries, budget, expiry, live view) ----

namespace {

json api_json(const agent& a, const std::string& target) {
    const auto body = http_get(a.port(), target);
    return body ? json::parse(*body) : json();
}

}  // namespace

TEST(aggregation, slow_queries_and_statement_totals_match_what_producers_recorded) {
    temp_dir dir;
    const std::string rt = dir.path() + "/rt";
    // sq1-0 has its own threshold above the 2 s slow queries: none of its queries is slow
    agent a(rt, dir.path() + "/agent.log",
            {"--slow-query-threshold", "1s", "--slow-query-thresholds", "sq1-0=10s", "--slow-query-samples", "1000"});
    loadgen_run lg(dir, "lg", rt,
                   {"--processes", "2", "--threads", "1", "--events", "30000", "--rate", "200000", "--mix", "record", "--plugins",
                    "1", "--plugin-prefix", "sq{process}-", "--statements", "3", "--slow-every", "250",
                    "--wait-attached", "10s"});
    ASSERT_EQ(lg.finish(), 0) << lg.log();
    ASSERT_TRUE(wait_finished(a, pids_of(lg.children()))) << a.producers_json();
    std::map<std::string, std::uint64_t> slow_by_plugin, queries_by_plugin;
    for (const auto& c : lg.children()) {
        ASSERT_EQ(c["dropped"].get<std::uint64_t>(), 0u) << "this test needs every event drained";
        const std::string plugin = "sq" + std::to_string(c["index"].get<int>()) + "-0";
        slow_by_plugin[plugin] = c["slow"].get<std::uint64_t>();
        queries_by_plugin[plugin] = c["queries"].get<std::uint64_t>();
    }
    ASSERT_EQ(slow_by_plugin["sq0-0"], 120u);  // 30,000 / 250

    const json sq = api_json(a, "/api/v1/slow-queries?limit=1000");
    ASSERT_TRUE(sq.is_object());
    EXPECT_EQ(sq["slow_total"].get<std::uint64_t>(), slow_by_plugin["sq0-0"]);
    EXPECT_EQ(sq["samples"].size(), slow_by_plugin["sq0-0"]);
    for (const auto& s : sq["samples"]) {
        EXPECT_EQ(s["plugin"], "sq0-0");
        EXPECT_DOUBLE_EQ(s["duration_seconds"].get<double>(), 2.0);
        // the literal variants were normalised away: the text carries placeholders
        EXPECT_NE(s["statement"].get<std::string>().find("where id = ? and note = ?"), std::string::npos) << s;
    }
    // Per plugin: three statement shapes (four literal variants each fold into one), and their
    // calls add up to every query the plugin ran.
    std::map<std::string, std::uint64_t> calls, slow;
    std::map<std::string, std::set<std::string>> fingerprints;
    for (const auto& t : sq["top"]) {
        const std::string plugin = t["plugin"];
        calls[plugin] += t["calls"].get<std::uint64_t>();
        slow[plugin] += t["slow"].get<std::uint64_t>();
        fingerprints[plugin].insert(t["fingerprint"].get<std::string>());
    }
    for (const auto& [plugin, n] : queries_by_plugin) {
        EXPECT_EQ(calls[plugin], n) << plugin;
        EXPECT_EQ(fingerprints[plugin].size(), 3u) << plugin;
    }
    EXPECT_EQ(slow["sq0-0"], slow_by_plugin["sq0-0"]);
    EXPECT_EQ(slow["sq1-0"], 0u);
    // filtered by plugin
    const json one = api_json(a, "/api/v1/slow-queries?plugin=sq1-0");
    EXPECT_EQ(one["samples"].size(), 0u);
    EXPECT_EQ(one["top"].size(), 3u);
    int status = 0;
    EXPECT_FALSE(http_get(a.port(), "/api/v1/slow-queries?limit=zero", &status));
    EXPECT_EQ(status, 400);
    const metrics m = a.scrape();
    EXPECT_EQ(std::uint64_t(m.sum("plugmon_agent_slow_queries_total")), slow_by_plugin["sq0-0"]);
    EXPECT_EQ(a.stop(), 0);
}

TEST(aggregation, plugins_api_reports_window_and_since_start_percentiles) {
    temp_dir dir;
    const std::string rt = dir.path() + "/rt";
    agent a(rt, dir.path() + "/agent.log", {"--flush-interval", "200ms"});
    loadgen_run lg(dir, "lg", rt,
                   {"--processes", "1", "--threads", "1", "--events", "20000", "--rate", "200000", "--mix", "record",
                    "--plugins", "1", "--plugin-prefix", "pct-", "--slow-every", "1000", "--slow-duration", "3s", "--wait-attached",
                    "10s"});
    ASSERT_EQ(lg.finish(), 0) << lg.log();
    ASSERT_TRUE(wait_finished(a, pids_of(lg.children()))) << a.producers_json();
    const auto queries = lg.children().at(0)["queries"].get<std::uint64_t>();
    json p;
    // every event lands in a window that closes within the flush interval
    ASSERT_TRUE(wait_until(
        [&] {
            p = api_json(a, "/api/v1/plugins/pct-0");
            return p.is_object() && p["since_start"]["calls"].get<std::uint64_t>() == queries;
        },
        10s))
        << p;
    const json& ss = p["since_start"];
    const double p50 = ss["p50_seconds"], p95 = ss["p95_seconds"], p99 = ss["p99_seconds"], mx = ss["max_seconds"];
    EXPECT_GT(p50, 0.0);
    EXPECT_LE(p50, p95);
    EXPECT_LE(p95, p99);
    EXPECT_LT(p99, 3.0);  // 0.1 % of the queries took 3 s: above p99, and exactly the max
    EXPECT_DOUBLE_EQ(mx, 3.0);
    EXPECT_EQ(p["calls"].get<std::uint64_t>(), queries);
    ASSERT_TRUE(p["window"].is_object()) << p;
    EXPECT_DOUBLE_EQ(p["window"]["seconds"].get<double>(), 0.2);
    EXPECT_EQ(a.stop(), 0);
}

TEST(aggregation, series_budget_folds_a_hostile_number_of_names_and_counts_stay_exact) {
    // 5 plugins x 3,000 tables x 4 tenants x 4 ops: far more label sets than either budget allows.
    // First only the per-plugin budget binds (each plugin keeps 100 series and folds the rest
    // into its own __overflow__ series); then the total budget binds too (newer label sets of
    // any plugin fold into the all-__overflow__ series).
    struct budget_case {
        const char* total;
        bool per_plugin_exact;
    };
    for (const budget_case bc : {budget_case{"1000", true}, budget_case{"300", false}}) {
        SCOPED_TRACE(std::string("series_budget ") + bc.total);
        temp_dir dir;
        const std::string rt = dir.path() + "/rt";
        agent a(rt, dir.path() + "/agent.log", {"--series-budget", bc.total, "--series-budget-per-plugin", "100"});
        loadgen_run lg(dir, "lg", rt,
                       {"--processes", "1", "--threads", "1", "--events", "40000", "--rate", "20000", "--mix",
                        "record", "--plugins", "5", "--plugin-prefix", "flood-", "--tables", "3000", "--tenants",
                        "4", "--wait-attached", "10s"});
        ASSERT_EQ(lg.finish(), 0) << lg.log();
        ASSERT_TRUE(wait_finished(a, pids_of(lg.children()))) << a.producers_json();
        const json& c = lg.children().at(0);
        const auto written = c["written"].get<std::uint64_t>();
        // per-plugin figures below compare with what each plugin recorded: none may be dropped
        // paced (20 k/s, a 16 K-slot lane holds 0.8 s) so that even a sanitizer build's agent,
        // creating a series per event, keeps up
        ASSERT_EQ(c["dropped"].get<std::uint64_t>(), 0u) << "paced to stay drop-free; the machine fell behind";
        const metrics m = a.scrape();
        // nothing lost: every drained query is counted, most of them under __overflow__ labels
        EXPECT_EQ(std::uint64_t(m.sum("plugmon_queries_total")), written);
        EXPECT_EQ(std::uint64_t(m.sum("plugmon_agent_events_drained_total")), written);
        const auto folded = std::uint64_t(m.sum("plugmon_agent_events_folded_total"));
        EXPECT_GT(folded, written / 2);
        EXPECT_EQ(std::uint64_t(m.sum("plugmon_queries_total", {{"table", "__overflow__"}})), folded);
        std::size_t series = 0;
        for (const auto& [key, v] : m.samples)
            if (key.rfind("plugmon_query_rows_total{", 0) == 0) ++series;
        if (bc.per_plugin_exact) {
            for (const auto& [plugin, q] : c["queries_by_plugin"].items())
                EXPECT_EQ(std::uint64_t(m.sum("plugmon_queries_total", {{"plugin", plugin}})), q.get<std::uint64_t>())
                    << plugin;
            EXPECT_EQ(series, 5u * 101u);  // 100 of its own and one overflow series per plugin
        } else {
            EXPECT_GT(m.sum("plugmon_queries_total", {{"plugin", "__overflow__"}}), 0.0);
            EXPECT_LE(series, 300u + 5u + 1u);
        }
        std::string out;
        EXPECT_EQ(promtool_check_metrics(dir.path(), a.metrics_text(), out), 0) << out;
        EXPECT_EQ(a.stop(), 0);
    }
}

TEST(aggregation, idle_series_expire_and_free_their_memory) {
    temp_dir dir;
    const std::string rt = dir.path() + "/rt";
    agent a(rt, dir.path() + "/agent.log", {"--flush-interval", "200ms", "--series-expiry-windows", "3"});
    loadgen_run lg(dir, "lg", rt,
                   {"--processes", "1", "--threads", "1", "--events", "20000", "--mix", "mixed", "--plugins", "3",
                    "--plugin-prefix", "gone-", "--tables", "20", "--wait-attached", "10s"});
    ASSERT_EQ(lg.finish(), 0) << lg.log();
    ASSERT_TRUE(wait_finished(a, pids_of(lg.children()))) << a.producers_json();
    metrics m;
    ASSERT_TRUE(wait_until(
        [&] {
            m = a.scrape();
            return m.sum("plugmon_agent_series") == 0;
        },
        10s))
        << a.metrics_text();
    EXPECT_GT(m.sum("plugmon_agent_series_expired_total"), 60.0);  // 3 plugins x 4 ops x 20 tables, at most
    EXPECT_EQ(m.sum("plugmon_queries_total"), 0);
    const json plugins = api_json(a, "/api/v1/plugins");
    EXPECT_TRUE(plugins["plugins"].empty()) << plugins;
    EXPECT_EQ(a.stop(), 0);
}

TEST(aggregation, plugmonctl_top_shows_the_plugins_of_a_running_agent) {
    temp_dir dir;
    const std::string rt = dir.path() + "/rt";
    agent a(rt, dir.path() + "/agent.log", {"--flush-interval", "200ms"});
    loadgen_run lg(dir, "lg", rt,
                   {"--processes", "1", "--threads", "1", "--duration", "4s", "--rate", "20000", "--mix", "mixed",
                    "--plugins", "2", "--plugin-prefix", "top-", "--wait-attached", "10s"});
    std::this_thread::sleep_for(1s);
    process ctl({PLUGMON_CTL_BIN, "--agent", "127.0.0.1:" + std::to_string(a.port()), "top", "--iterations", "2",
                 "--interval", "0.5"},
                {}, dir.path() + "/top.out", dir.path() + "/top.err");
    const auto st = ctl.wait(20s);
    ASSERT_TRUE(st.has_value());
    EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 0) << read_file(dir.path() + "/top.err");
    const std::string out = read_file(dir.path() + "/top.out");
    EXPECT_NE(out.find("top-0"), std::string::npos) << out;
    EXPECT_NE(out.find("top-1"), std::string::npos) << out;
    EXPECT_NE(out.find("CALLS/S"), std::string::npos) << out;
    EXPECT_EQ(out.find("\x1b["), std::string::npos) << "no escape codes when not on a terminal";
    // the second frame has rates: some plugin shows a number where the first frame had "-"
    const auto second = out.find("\n\n");
    ASSERT_NE(second, std::string::npos) << out;
    EXPECT_NE(out.find_first_of("123456789", out.find("top-", second)), std::string::npos) << out;
    // pool samples (mixed mix: a 16-connection pool): utilisation per plugin while it runs
    const json p = api_json(a, "/api/v1/plugins/top-0");
    ASSERT_TRUE(p.is_object() && p["pool"].is_object()) << p;
    EXPECT_EQ(p["pool"]["in_use"].get<std::uint64_t>() + p["pool"]["idle"].get<std::uint64_t>(), 16u) << p;
    EXPECT_GE(p["pool"]["utilization"].get<double>(), 0.0);
    EXPECT_LE(p["pool"]["utilization"].get<double>(), 1.0);
    ASSERT_EQ(lg.finish(), 0) << lg.log();
    EXPECT_EQ(a.stop(), 0);
}

TEST(aggregation, a_plugin_that_leaks_is_flagged_and_one_that_frees_is_not) {
    temp_dir dir;
    const std::string rt = dir.path() + "/rt";
    // 5 s window: flagged after about 4 s of steady growth (the fit needs 80 % of the window)
    agent a(rt, dir.path() + "/agent.log",
            {"--leak-window", "5s", "--leak-min-growth", "100000", "--leak-min-r2", "0.8"});
    // leak-0 keeps 2,000 bytes per execution (~50 executions/s); leak-1 allocates and frees
    loadgen_run lg(dir, "lg", rt,
                   {"--processes", "1", "--threads", "1", "--duration", "9s", "--rate", "10000", "--mix", "mixed",
                    "--plugins", "2", "--plugin-prefix", "leak-", "--alloc-bytes", "4096", "--leak-bytes", "2000",
                    "--wait-attached", "10s", "--linger-attached", "1s"});
    json p0, p1;
    const bool flagged = wait_until(
        [&] {
            p0 = api_json(a, "/api/v1/plugins/leak-0");
            return p0.is_object() && p0["leak"].is_object() && p0["leak"]["suspected"].get<bool>();
        },
        9s);
    p1 = api_json(a, "/api/v1/plugins/leak-1");
    const metrics m = a.scrape();
    ASSERT_EQ(lg.finish(), 0) << lg.log();
    ASSERT_TRUE(flagged) << p0;
    EXPECT_TRUE(p0["alloc_tracked"].get<bool>());
    EXPECT_GT(p0["live_bytes"].get<std::uint64_t>(), 100000u);
    EXPECT_GT(p0["leak"]["slope_bytes_per_second"].get<double>(), 10000.0);
    ASSERT_TRUE(p1.is_object() && p1["leak"].is_object()) << p1;
    EXPECT_TRUE(p1["alloc_tracked"].get<bool>());
    EXPECT_FALSE(p1["leak"]["suspected"].get<bool>()) << p1;
    EXPECT_LT(p1["live_bytes"].get<std::uint64_t>(), 100000u) << p1;  // allocated, then freed
    EXPECT_GT(p1["allocated_bytes"].get<std::uint64_t>(), 1000000u) << p1;
    EXPECT_EQ(m.sum("plugmon_plugin_leak_suspected", {{"plugin", "leak-0"}}), 1.0);
    EXPECT_EQ(m.sum("plugmon_plugin_leak_suspected", {{"plugin", "leak-1"}}), 0.0);
    EXPECT_GT(m.sum("plugmon_process_resident_memory_bytes"), 0.0);
    EXPECT_EQ(a.stop(), 0);
}
