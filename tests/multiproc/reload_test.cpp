// Reload without a gap, end to end: a real agent under a steady load from a real producer takes
// a changed slow-query threshold from its file on SIGHUP and on POST /-/reload, refuses a bad
// file while keeping the running configuration, and meanwhile loses no event, keeps its
// producer attached and answers every scrape.
#include "support/harness.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <atomic>
#include <csignal>
#include <fstream>
#include <thread>

using namespace plugmon::test;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

constexpr const char* admin_token = "reload-admin-secret-0123456789";

void write_config(const std::string& path, const std::string& slow_threshold,
                  const std::string& extra = "") {
    std::ofstream out(path, std::ios::trunc);
    out << "api_token = \"" << admin_token << "\"\n"
        << "slow_query_threshold = \"" << slow_threshold << "\"\n"
        << extra;
}

/// Scrapes /metrics in a loop until stopped: every failed scrape and every counter that went
/// backwards is a gap.
class scraper {
public:
    explicit scraper(const agent& a) : a_(a), thread_([this] { run(); }) {}
    ~scraper() { stop(); }
    void stop() {
        stop_ = true;
        if (thread_.joinable()) thread_.join();
    }
    int scrapes() const { return scrapes_; }
    int failures() const { return failures_; }
    int backwards() const { return backwards_; }

private:
    void run() {
        double last = 0;
        while (!stop_) {
            int status = 0;
            const auto body = http_get(a_.port(), "/metrics", &status);
            ++scrapes_;
            if (!body) {
                ++failures_;
            } else {
                const double drained = metrics::parse(*body).sum("plugmon_agent_events_drained_total");
                if (drained < last) ++backwards_;
                last = drained;
            }
            std::this_thread::sleep_for(50ms);
        }
    }
    const agent& a_;
    std::atomic<bool> stop_{false};
    std::atomic<int> scrapes_{0}, failures_{0}, backwards_{0};
    std::thread thread_;
};

double slow(const agent& a) { return a.scrape().sum("plugmon_agent_slow_queries_total"); }

}  // namespace

TEST(reload, a_changed_threshold_applies_from_the_next_window_without_a_gap_or_a_lost_event) {
    temp_dir dir;
    const std::string rt = dir.path() + "/rt";
    const std::string file = dir.path() + "/plugmon.toml";
    write_config(file, "10s");  // the load's slow queries take 2 s: none is slow yet
    agent a(rt, dir.path() + "/agent.log", {"--config", file, "--flush-interval", "300ms"});
    // every 50th query takes 2 s (recorded, not slept): 2 % slow once the threshold is 1 s
    loadgen_run lg(dir, "lg", rt,
                   {"--processes", "1", "--threads", "1", "--duration", "12s", "--rate", "5000",
                    "--mix", "record", "--plugins", "2", "--slow-every", "50", "--wait-attached",
                    "10s"});
    scraper watch(a);
    ASSERT_TRUE(wait_until([&] { return a.scrape().sum("plugmon_agent_events_drained_total") > 1000; }, 20s));
    EXPECT_EQ(slow(a), 0.0);

    // SIGHUP with a lower threshold: slow queries appear, from the next window on
    write_config(file, "1s");
    a.proc().signal(SIGHUP);
    ASSERT_TRUE(wait_until([&] { return slow(a) > 0; }, 20s)) << read_file(dir.path() + "/agent.log");
    metrics m = a.scrape();
    EXPECT_EQ(m.sum("plugmon_config_reloads_total", {{"result", "applied"}}), 1.0);
    EXPECT_EQ(m.sum("plugmon_config_last_reload_successful"), 1.0);

    // a bad file is refused whole: the running threshold stays (slow queries keep coming)
    write_config(file, "1s", "series_budget = \"lots\"\n");
    a.proc().signal(SIGHUP);
    ASSERT_TRUE(wait_until(
        [&] { return a.scrape().sum("plugmon_config_reloads_total", {{"result", "refused"}}) == 1.0; }, 20s));
    EXPECT_EQ(a.scrape().sum("plugmon_config_last_reload_successful"), 0.0);
    const double before = slow(a);
    EXPECT_TRUE(wait_until([&] { return slow(a) > before; }, 20s)) << "the 1 s threshold stays in force";

    // POST /-/reload reports what applied and what waits for a restart, and needs the admin token
    // ... and a receiver added by the reload starts at once (here one that never answers: its
    // windows wait in its spool)
    write_config(file, "1h",
                 "max_producers = 77\n[[remote_write]]\nname = \"late\"\nurl = "
                 "\"http://127.0.0.1:1/api/v1/write\"\nspool_dir = \"" +
                     dir.path() + "/rw-late\"\n");
    const auto denied = http_post(a.port(), "/-/reload");
    ASSERT_TRUE(denied.has_value());
    EXPECT_EQ(denied->first, 401);
    const auto r = http_post(a.port(), "/-/reload", admin_token);
    ASSERT_TRUE(r.has_value());
    ASSERT_EQ(r->first, 200) << r->second;
    const json body = json::parse(r->second);
    EXPECT_EQ(body["applied"], json::array({"slow_query_threshold", "remote_write"})) << body;
    EXPECT_EQ(body["restart_required"], json::array({"max_producers"})) << body;
    EXPECT_EQ(a.scrape().sum("plugmon_config_last_reload_successful"), 1.0);
    // with a 1 h threshold nothing is slow any more: the count settles
    double settled = 0;
    EXPECT_TRUE(wait_until(
        [&] {
            const double s1 = slow(a);
            std::this_thread::sleep_for(1s);  // three windows
            settled = slow(a);
            return settled == s1;
        },
        20s));

    EXPECT_TRUE(wait_until(
        [&] { return a.scrape().sum("plugmon_remote_write_queue_windows", {{"remote", "late"}}) > 0; }, 20s))
        << a.metrics_text();

    ASSERT_EQ(lg.finish(), 0) << lg.log();
    watch.stop();
    const json& c = lg.children().at(0);
    const auto written = c["written"].get<std::uint64_t>();
    ASSERT_TRUE(wait_until(
        [&] { return std::uint64_t(a.scrape().sum("plugmon_agent_events_drained_total")) == written; }, 20s));
    m = a.scrape();
    EXPECT_EQ(c["dropped"].get<std::uint64_t>(), 0u);
    EXPECT_EQ(std::uint64_t(m.sum("plugmon_queries_total")), written) << "no event lost";
    EXPECT_EQ(m.sum("plugmon_agent_producers_registered_total"), 1.0) << "the producer stayed attached";
    EXPECT_EQ(watch.failures(), 0) << "of " << watch.scrapes() << " scrapes";
    EXPECT_EQ(watch.backwards(), 0);
    EXPECT_GT(watch.scrapes(), 20);
    const std::string log = read_file(dir.path() + "/agent.log");
    EXPECT_NE(log.find("changed but applied only at the next start: max_producers"), std::string::npos) << log;
    EXPECT_NE(log.find("series_budget"), std::string::npos) << "the refusal names the key";
    // the audit trail: both SIGHUPs, the POST with its token's name, never the token itself
    EXPECT_NE(log.find("actor=SIGHUP"), std::string::npos) << log;
    EXPECT_NE(log.find("actor=api_token"), std::string::npos) << log;
    EXPECT_EQ(log.find(admin_token), std::string::npos);
    EXPECT_EQ(a.stop(), 0);
}
