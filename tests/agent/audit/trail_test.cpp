// Specifies the audit trail: a bounded ring read newest first, one JSON log line per entry with
// every field, strings cleaned, secrets masked, and safe to record from many threads.
#include "audit/trail.hpp"

#include "log/log.hpp"

#include <algorithm>
#include <cstdint>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

namespace plugmon::agent {
namespace {

/// The default logger redirected into a string with the JSON format, restored afterwards.
class captured_log {
public:
    captured_log()
        : previous_(spdlog::default_logger()),
          logger_(std::make_shared<spdlog::logger>(
              "audit-test", std::make_shared<spdlog::sinks::ostream_sink_mt>(out_))) {
        spdlog::set_default_logger(logger_);
        log::setup(log::format::json, spdlog::level::info);
    }
    ~captured_log() { spdlog::set_default_logger(previous_); }
    std::vector<nlohmann::json> lines() const {
        std::vector<nlohmann::json> v;
        std::istringstream in(out_.str());
        for (std::string l; std::getline(in, l);) v.push_back(nlohmann::json::parse(l));
        return v;
    }
    std::string text() const { return out_.str(); }

private:
    std::ostringstream out_;
    std::shared_ptr<spdlog::logger> previous_;
    std::shared_ptr<spdlog::logger> logger_;
};

audit::entry post(std::string actor, unsigned status) {
    audit::entry e;
    e.actor = std::move(actor);
    e.client = "127.0.0.1";
    e.action = "POST /api/v1/silences";
    e.target = "/api/v1/silences";
    e.status = status;
    return e;
}

TEST(audit_trail, keeps_the_last_capacity_entries_newest_first) {
    captured_log log;
    audit::trail t(3);
    for (unsigned i = 0; i < 5; ++i) t.record(post("op" + std::to_string(i), 200 + i));
    EXPECT_EQ(t.recorded(), 5u);
    const auto all = t.recent(10);
    ASSERT_EQ(all.size(), 3u);
    EXPECT_EQ(all[0].actor, "op4");
    EXPECT_EQ(all[1].actor, "op3");
    EXPECT_EQ(all[2].actor, "op2");
    EXPECT_GT(all[0].seq, all[1].seq);
    const auto two = t.recent(2);
    ASSERT_EQ(two.size(), 2u);
    EXPECT_EQ(two[0].seq, all[0].seq);
}

TEST(audit_trail, writes_one_json_line_with_every_field) {
    captured_log log;
    audit::trail t;
    audit::entry e;
    e.actor = "SIGHUP";
    e.client = "-";
    e.action = "reload";
    e.target = "/etc/plugmon/agent.toml";
    e.status = 200;
    e.detail = audit::reload_detail({"log_level"}, {"listen"});
    t.record(e);
    const auto lines = log.lines();
    ASSERT_EQ(lines.size(), 1u) << log.text();
    const auto& j = lines[0];
    EXPECT_EQ(j.at("component"), "audit");
    EXPECT_EQ(j.at("actor"), "SIGHUP");
    EXPECT_EQ(j.at("client"), "-");
    EXPECT_EQ(j.at("action"), "reload");
    EXPECT_EQ(j.at("target"), "/etc/plugmon/agent.toml");
    EXPECT_EQ(j.at("status"), 200);
    EXPECT_EQ(j.at("detail"), "applied=log_level restart_required=listen");
    EXPECT_EQ(j.at("seq"), 1);
    EXPECT_TRUE(j.contains("at"));
    const auto kept = audit::to_json(t.recent(1).at(0));
    EXPECT_EQ(kept.at("at"), j.at("at"));
    EXPECT_EQ(kept.at("detail"), j.at("detail"));
}

TEST(audit_trail, masks_secrets_and_control_characters) {
    captured_log log;
    audit::trail t;
    const std::string secret = "s3cr3t-bearer-value";
    audit::entry e = post("ops\nforged line", 500);
    e.action = "reload";
    e.detail = audit::refusal_detail("postgres_url: postgresql://u:" + secret +
                                     "@db/x is unreachable; Authorization: Bearer " + secret);
    t.record(e);
    EXPECT_EQ(log.text().find(secret), std::string::npos) << log.text();
    const auto kept = t.recent(1).at(0);
    EXPECT_EQ(kept.detail.find(secret), std::string::npos) << kept.detail;
    EXPECT_EQ(kept.actor.find('\n'), std::string::npos);
    EXPECT_EQ(log.lines().size(), 1u);
    EXPECT_EQ(kept.detail.rfind("refused: ", 0), 0u) << kept.detail;
}

TEST(audit_trail, a_kept_entry_is_valid_utf8_even_when_cut_or_fed_invalid_bytes) {
    captured_log log;
    audit::trail t;
    audit::entry e = post("op\xff", 500);
    e.action = "reload";
    e.target = "/etc/plugmon/\xc3\x28.toml";
    // The refusal of a file with a long non-ASCII value: the cut falls inside a character.
    std::string why = "xy";
    for (int i = 0; i < 300; ++i) why += "\xc3\xa9";
    e.detail = audit::refusal_detail(why);
    t.record(e);
    const auto kept = t.recent(1).at(0);
    std::string body;
    ASSERT_NO_THROW(body = audit::to_json(kept).dump()) << "GET /api/v1/audit must stay answerable";
    EXPECT_LE(kept.detail.size(), 500u);
    EXPECT_EQ(kept.detail.rfind("refused: xy\xc3\xa9", 0), 0u) << "valid UTF-8 is kept";
    EXPECT_NE(kept.detail.back(), '?') << "the cut falls between two characters";
    EXPECT_EQ(kept.actor, "op?");
    EXPECT_EQ(kept.target, "/etc/plugmon/?(.toml");
    EXPECT_EQ(log.lines().size(), 1u);
}

TEST(audit_trail, records_from_many_threads_without_losing_a_sequence_number) {
    captured_log log;
    audit::trail t(10000);
    std::vector<std::thread> threads;
    for (int i = 0; i < 4; ++i)
        threads.emplace_back([&t, i] {
            for (int k = 0; k < 200; ++k) t.record(post("t" + std::to_string(i), 200));
        });
    for (auto& th : threads) th.join();
    const auto all = t.recent(10000);
    ASSERT_EQ(all.size(), 800u);
    for (std::size_t i = 1; i < all.size(); ++i) EXPECT_EQ(all[i - 1].seq, all[i].seq + 1);
    EXPECT_EQ(log.lines().size(), 800u);
}

TEST(audit_trail, queues_entries_for_the_store_only_once_asked_and_hands_each_over_once) {
    captured_log log;
    audit::trail t(2);
    t.record(post("before", 201));
    EXPECT_TRUE(t.take_pending().empty()) << "without a store nothing is queued";
    t.keep_pending();
    for (unsigned i = 0; i < 5; ++i) t.record(post("op" + std::to_string(i), 200 + i));
    // Every entry, oldest first, also those the ring of 2 no longer keeps.
    const auto taken = t.take_pending();
    ASSERT_EQ(taken.size(), 5u);
    for (std::size_t i = 0; i < taken.size(); ++i) {
        EXPECT_EQ(taken[i].seq, i + 2);
        EXPECT_EQ(taken[i].actor, "op" + std::to_string(i));
        EXPECT_EQ(taken[i].status, 200 + i);
    }
    EXPECT_TRUE(t.take_pending().empty()) << "taken once";
    t.record(post("after", 204));
    const auto next = t.take_pending();
    ASSERT_EQ(next.size(), 1u);
    EXPECT_EQ(next[0].seq, 7u);
    EXPECT_EQ(t.pending_dropped(), 0u);
}

TEST(audit_trail, a_pending_queue_nobody_takes_drops_its_oldest_and_counts_and_logs_it) {
    captured_log log;
    audit::trail t;
    t.keep_pending(3);
    for (unsigned i = 0; i < 5; ++i) t.record(post("op" + std::to_string(i), 200));
    EXPECT_EQ(t.pending_dropped(), 2u);
    const auto taken = t.take_pending();
    ASSERT_EQ(taken.size(), 3u);
    EXPECT_EQ(taken.front().actor, "op2");
    EXPECT_EQ(taken.back().actor, "op4");
    EXPECT_NE(log.text().find("will not reach plugmon.audit"), std::string::npos) << log.text();
}

TEST(audit_trail, pending_entries_from_many_threads_are_each_taken_exactly_once) {
    captured_log log;
    audit::trail t;
    t.keep_pending();
    std::vector<std::thread> threads;
    for (int i = 0; i < 4; ++i)
        threads.emplace_back([&t, i] {
            for (int k = 0; k < 200; ++k) t.record(post("t" + std::to_string(i), 200));
        });
    std::vector<std::uint64_t> seqs;
    for (int round = 0; round < 50; ++round)
        for (const auto& e : t.take_pending()) seqs.push_back(e.seq);
    for (auto& th : threads) th.join();
    for (const auto& e : t.take_pending()) seqs.push_back(e.seq);
    std::sort(seqs.begin(), seqs.end());
    ASSERT_EQ(seqs.size(), 800u);
    for (std::size_t i = 0; i < seqs.size(); ++i) EXPECT_EQ(seqs[i], i + 1);
}

}  // namespace
}  // namespace plugmon::agent
