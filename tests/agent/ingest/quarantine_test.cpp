// The drain's accounting for a quarantined producer: the quarantine itself is no event, so it
// counts exactly the events the producer published that the drain will never read, and
// recorded = drained + dropped{full,torn,invalid} holds to the event.
#include "aggregate/series.hpp"
#include "ingest/drainer.hpp"
#include "ingest/producer.hpp"
#include "ingest/segment.hpp"

#include <plugmon/layout.hpp>

#include <gtest/gtest.h>

#include "support/hand_segment.hpp"

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include <unistd.h>

namespace pa = plugmon::agent;
namespace ly = plugmon::layout;

namespace {

using plugmon::test::hand_segment;
using plugmon::test::segment_spec;

using plugmon::test::op_id;
using plugmon::test::plugin_id;
using plugmon::test::query_at;
using plugmon::test::table_id;
constexpr std::uint32_t shared_lane = 2;  // lane_count == 2

bool wait_for(const std::function<bool()>& pred) {
    const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < end) {
        if (pred()) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return pred();
}

class quarantine : public ::testing::Test {
protected:
    void SetUp() override {
        h_.name(plugin_id, "billing");
        h_.name(op_id, "SELECT");
        h_.name(table_id, "invoices");
    }
    void TearDown() override { EXPECT_TRUE(drain_.stop(std::chrono::seconds(5))); }
    /// Publishes valid queries [from, to) on lane `i`.
    void publish(std::uint32_t i, std::uint64_t from, std::uint64_t to) {
        for (std::uint64_t k = from; k < to; ++k) h_.put(i, k, query_at(k));
        h_.publish(i, to);
    }
    /// Hands the segment to the drain as a registered producer and starts it.
    void register_and_start() {
        pa::reject_reason why{};
        std::string detail;
        auto seg = pa::mapped_segment::attach(h_.fd(), why, detail);
        ASSERT_NE(seg, nullptr) << detail;
        producer_ = std::make_shared<pa::producer>(1, ::getpid(), ::getuid(), ::dup(h_.fd()),
                                                   std::move(seg));
        drain_.add(producer_);
        drain_.start();
    }
    std::uint64_t accounted() const {
        const pa::drain_totals& t = drain_.totals();
        return t.drained.get() + t.full.get() + t.torn.get() + t.invalid.get();
    }
    static pa::drain::options options() {
        pa::drain::options o;
        o.idle_sleep = std::chrono::microseconds(100);
        return o;
    }

    hand_segment h_{segment_spec{.names = 32}};
    pa::series_registry store_{pa::bucket_bounds::from_seconds({0.001, 0.1}, {0.001, 0.1})};
    pa::drain drain_{store_, options()};
    std::shared_ptr<pa::producer> producer_;
};

TEST_F(quarantine, counts_the_unread_published_events_and_not_the_quarantine_itself) {
    publish(0, 0, 5);            // read before the broken lane
    h_.publish(1, 64 + 1);       // more published than a lane holds: quarantine, nothing countable
    publish(shared_lane, 0, 3);  // after the broken lane: never read
    register_and_start();
    ASSERT_TRUE(wait_for([&] { return producer_->state() == pa::producer_state::quarantined; }));
    const pa::drain_totals& t = drain_.totals();
    EXPECT_EQ(t.producers_quarantined.get(), 1u);
    EXPECT_EQ(t.drained.get(), 5u);
    EXPECT_EQ(t.invalid.get(), 3u) << "the shared lane's unread events, no more";
    EXPECT_EQ(producer_->stats().invalid.get(), 3u);
    EXPECT_EQ(accounted(), 5u + 3u) << "recorded = drained + dropped";
}

TEST_F(quarantine, counts_what_was_published_after_it_when_the_producer_finishes) {
    publish(0, 0, 4);
    h_.publish(1, 64 + 1);
    register_and_start();
    ASSERT_TRUE(wait_for([&] { return producer_->state() == pa::producer_state::quarantined; }));
    EXPECT_EQ(accounted(), 4u);
    publish(0, 4, 10);          // the quarantined producer goes on recording
    publish(shared_lane, 0, 2);
    producer_->mark_gone(true);
    ASSERT_TRUE(wait_for([&] { return producer_->state() == pa::producer_state::finished; }));
    const pa::drain_totals& t = drain_.totals();
    EXPECT_EQ(t.drained.get(), 4u);
    EXPECT_EQ(t.invalid.get(), 6u + 2u) << "each lost event once, none twice";
    EXPECT_EQ(accounted(), 4u + 6u + 2u) << "recorded = drained + dropped";
}

}  // namespace
