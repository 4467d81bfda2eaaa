// Segments built by hand in a memfd, as a probe or an impostor would: what the agent's attach
// accepts and refuses, and what its lane decoder drains, skips, counts and refuses to trust.
#include "ingest/segment.hpp"

#include <plugmon/layout.hpp>

#include <gtest/gtest.h>

#include "support/hand_segment.hpp"

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <ostream>
#include <stdexcept>
#include <string>
#include <vector>

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

namespace plugmon::agent {
// Failure messages name the reason instead of dumping its bytes.
void PrintTo(reject_reason r, std::ostream* os) { *os << to_string(r); }
}  // namespace plugmon::agent

namespace pa = plugmon::agent;
namespace ly = plugmon::layout;

namespace {

using spec = plugmon::test::segment_spec;
using plugmon::test::declare;
using plugmon::test::hand_segment;

/// Attaches a segment that must be accepted.
std::unique_ptr<pa::mapped_segment> attach_ok(const hand_segment& h) {
    pa::reject_reason why{};
    std::string detail;
    auto seg = pa::mapped_segment::attach(h.fd(), why, detail);
    EXPECT_NE(seg, nullptr) << pa::to_string(why) << ": " << detail;
    return seg;
}

/// Why attach refused a segment built from `s` (none = accepted).
pa::reject_reason refusal(const spec& s) {
    hand_segment h(s);
    pa::reject_reason why = pa::reject_reason::none;
    std::string detail;
    const auto seg = pa::mapped_segment::attach(h.fd(), why, detail);
    if (seg) return pa::reject_reason::none;
    EXPECT_FALSE(detail.empty()) << "a refusal must say why";
    return why;
}

// ---- attach ----

TEST(segment_attach, accepts_a_well_formed_segment_and_reads_its_geometry) {
    hand_segment h({.lanes = 3, .lane_slots = 128, .names = 32, .clock = ly::clock_kind::tsc});
    const auto seg = attach_ok(h);
    ASSERT_NE(seg, nullptr);
    const auto want = ly::make_geometry(3, 128, 32);
    EXPECT_EQ(seg->geometry().lane_count, 3u);
    EXPECT_EQ(seg->geometry().lane_slots, 128u);
    EXPECT_EQ(seg->geometry().name_capacity, 32u);
    EXPECT_EQ(seg->geometry().slots_offset, want.slots_offset);
    EXPECT_EQ(seg->geometry().segment_size, want.segment_size);
    EXPECT_TRUE(seg->tsc_clock());
    EXPECT_EQ(seg->creator_pid(), std::uint32_t(::getpid()));
}

TEST(segment_attach, accepts_a_file_larger_than_declared) {
    const auto g = ly::make_geometry(2, 64, 16);
    EXPECT_EQ(refusal({.file_size = std::int64_t(g.segment_size) + 8192}), pa::reject_reason::none);
}

TEST(segment_attach, refuses_a_wrong_magic) {
    EXPECT_EQ(refusal({.edit = [](ly::segment_header& h) { h.magic ^= 1; }}),
              pa::reject_reason::magic);
}

TEST(segment_attach, refuses_another_layout_version) {
    EXPECT_EQ(refusal({.ready = ly::layout_version + 1,
                       .edit = [](ly::segment_header& h) { h.version = ly::layout_version + 1; }}),
              pa::reject_reason::version);
}

TEST(segment_attach, refuses_a_ready_word_that_is_not_the_layout_version) {
    EXPECT_EQ(refusal({.ready = ly::layout_version + 1}), pa::reject_reason::version);
}

TEST(segment_attach, refuses_a_header_not_marked_ready) {
    EXPECT_EQ(refusal({.ready = 0}), pa::reject_reason::not_ready);
}

TEST(segment_attach, refuses_a_memfd_that_can_still_shrink_or_grow) {
    EXPECT_EQ(refusal({.seals = 0}), pa::reject_reason::unsealed);
    EXPECT_EQ(refusal({.seals = F_SEAL_GROW}), pa::reject_reason::unsealed);
    EXPECT_EQ(refusal({.seals = F_SEAL_SHRINK}), pa::reject_reason::unsealed);
    EXPECT_EQ(refusal({.seals = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL}),
              pa::reject_reason::none);
}

TEST(segment_attach, refuses_a_descriptor_that_is_not_a_sealable_memfd) {
    int p[2];
    ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
    pa::reject_reason why = pa::reject_reason::none;
    std::string detail;
    EXPECT_EQ(pa::mapped_segment::attach(p[0], why, detail), nullptr);
    EXPECT_EQ(why, pa::reject_reason::unsealed);
    ::close(p[0]);
    ::close(p[1]);
}

TEST(segment_attach, refuses_a_file_smaller_than_its_declared_size) {
    const auto g = ly::make_geometry(2, 64, 16);
    EXPECT_EQ(refusal({.file_size = std::int64_t(g.segment_size) - 4096}), pa::reject_reason::size);
    EXPECT_EQ(refusal({.file_size = std::int64_t(g.slots_offset)}), pa::reject_reason::size);
}

TEST(segment_attach, refuses_a_file_smaller_than_a_header) {
    EXPECT_EQ(refusal({.file_size = 0}), pa::reject_reason::size);
    EXPECT_EQ(refusal({.file_size = 64}), pa::reject_reason::size);
    EXPECT_EQ(refusal({.file_size = std::int64_t(ly::header_size) - 1}), pa::reject_reason::size);
}

/// One way a header's self-declared geometry can be absurd.
struct absurd {
    const char* name;
    std::function<void(ly::segment_header&)> edit;
};

class segment_attach_geometry : public ::testing::TestWithParam<absurd> {};

TEST_P(segment_attach_geometry, refuses) {
    EXPECT_EQ(refusal({.edit = GetParam().edit}), pa::reject_reason::geometry);
}

// Every case declares offsets and size consistent with its own numbers (declare()), so only the
// bound named by the case is broken.
INSTANTIATE_TEST_SUITE_P(
    absurd, segment_attach_geometry,
    ::testing::Values(
        absurd{"zero_lanes", [](ly::segment_header& h) { declare(h, 0, 64, 16); }},
        absurd{"more_lanes_than_max_lanes",
               [](ly::segment_header& h) { declare(h, ly::max_lanes + 1, 64, 16); }},
        absurd{"lane_count_that_wraps", [](ly::segment_header& h) { declare(h, ~0u, 64, 16); }},
        absurd{"lane_slots_not_a_power_of_two",
               [](ly::segment_header& h) { declare(h, 2, 96, 16); }},
        absurd{"lane_slots_below_the_minimum",
               [](ly::segment_header& h) { declare(h, 2, ly::min_lane_slots / 2, 16); }},
        absurd{"lane_slots_above_the_maximum",
               [](ly::segment_header& h) { declare(h, 2, ly::max_lane_slots * 2, 16); }},
        absurd{"zero_lane_slots", [](ly::segment_header& h) { declare(h, 2, 0, 16); }},
        absurd{"no_room_for_the_reserved_names",
               [](ly::segment_header& h) { declare(h, 2, 64, 1); }},
        absurd{"name_capacity_above_the_maximum",
               [](ly::segment_header& h) { declare(h, 2, 64, ly::max_name_capacity + 1); }},
        absurd{"name_capacity_all_ones", [](ly::segment_header& h) { declare(h, 2, 64, ~0u); }},
        absurd{"name_entry_size", [](ly::segment_header& h) { h.name_entry_bytes = 64; }},
        absurd{"header_size", [](ly::segment_header& h) { h.header_bytes = 2 * ly::header_size; }},
        absurd{"unknown_clock", [](ly::segment_header& h) { h.clock = 2; }},
        absurd{"lanes_offset_moved",
               [](ly::segment_header& h) { h.lanes_offset += ly::slot_size; }},
        absurd{"lanes_inside_the_header", [](ly::segment_header& h) { h.lanes_offset = 0; }},
        absurd{"names_overlapping_the_lanes",
               [](ly::segment_header& h) { h.names_offset = h.lanes_offset; }},
        absurd{"slots_overlapping_the_names",
               [](ly::segment_header& h) { h.slots_offset = h.names_offset; }},
        absurd{"slots_beyond_the_file", [](ly::segment_header& h) { h.slots_offset = 1ull << 40; }},
        absurd{"declared_size_smaller_than_the_layout",
               [](ly::segment_header& h) { h.segment_size -= 4096; }},
        absurd{"declared_size_larger_than_the_layout",
               [](ly::segment_header& h) { h.segment_size += 4096; }}),
    [](const ::testing::TestParamInfo<absurd>& p) { return std::string(p.param.name); });

// ---- draining a lane ----

using plugmon::test::op_id;
using plugmon::test::plugin_id;
using plugmon::test::query_at;
using plugmon::test::table_id;

/// Collects what a drain pass hands to the aggregation; refuses nothing unless told to.
struct collector {
    std::vector<pa::event> events;
    bool accept = true;
    auto sink() {
        return [this](const pa::event& e) {
            events.push_back(e);
            return accept;
        };
    }
};

class segment_lane : public ::testing::Test {
protected:
    void SetUp() override {
        h_.name(plugin_id, "billing");
        h_.name(op_id, "SELECT");
        h_.name(table_id, "invoices");
        seg_ = attach_ok(h_);
        ASSERT_NE(seg_, nullptr);
    }
    pa::lane_result drain(std::uint32_t lane, bool final = false) {
        return seg_->drain_lane(lane, final, 1.0, got_.sink());
    }
    static constexpr std::uint32_t shared = 2;     // lane_count == 2: lane 2 is the shared lane
    static constexpr std::uint32_t capacity = 32;  // name ids 0..31
    hand_segment h_{spec{.names = capacity}};
    std::unique_ptr<pa::mapped_segment> seg_;
    collector got_;
};

TEST_F(segment_lane, drains_published_slots_in_order_and_advances_tail) {
    for (std::uint64_t i = 0; i < 3; ++i) h_.put(0, i, query_at(i, 10 + i));
    h_.put(0, 3, query_at(3));  // written but not published: must not be read
    h_.publish(0, 3);
    const auto r = drain(0);
    EXPECT_EQ(r.drained, 3u);
    EXPECT_EQ(r.invalid, 0u);
    EXPECT_FALSE(r.corrupt);
    ASSERT_EQ(got_.events.size(), 3u);
    for (std::uint64_t i = 0; i < 3; ++i) {
        const pa::event& e = got_.events[i];
        EXPECT_EQ(e.kind, ly::event_kind::query);
        EXPECT_EQ(e.plugin, plugin_id);
        EXPECT_EQ(e.op, op_id);
        EXPECT_EQ(e.table, table_id);
        EXPECT_EQ(e.value, 10 + i);
        EXPECT_EQ(e.start, 1000 + i);
        EXPECT_EQ(e.duration_ns, 250u);
    }
    EXPECT_EQ(h_.lane(0).tail.load(), 3u);
    EXPECT_EQ(drain(0).drained, 0u) << "a slot is drained once";
}

TEST_F(segment_lane, drains_a_full_lane_across_the_wrap) {
    // 64 slots: start at 1000 so the window [1000, 1064) wraps around the slot array.
    h_.lane(0).tail.store(1000);
    for (std::uint64_t i = 1000; i < 1064; ++i) h_.put(0, i, query_at(i));
    h_.publish(0, 1064);
    const auto r = drain(0);
    EXPECT_FALSE(r.corrupt) << "head - tail == lane_slots is a full lane, not corruption";
    EXPECT_EQ(r.drained, 64u);
    EXPECT_EQ(h_.lane(0).tail.load(), 1064u);
}

TEST_F(segment_lane, counts_a_stale_slot_from_the_previous_lap_invalid) {
    h_.lane(0).tail.store(64);
    h_.put(0, 64, query_at(0));  // what index 0 left there: seq 1, not 65
    h_.publish(0, 65);
    const auto r = drain(0);
    EXPECT_EQ(r.drained, 0u);
    EXPECT_EQ(r.invalid, 1u);
}

/// One way a slot can be malformed.
struct defect {
    const char* name;
    std::function<void(ly::slot&)> apply;
};

TEST_F(segment_lane, counts_each_malformed_slot_invalid_and_keeps_draining) {
    const std::vector<defect> defects = {
        {"seq of another index", [](ly::slot& s) { s.seq += 1; }},
        {"seq zero", [](ly::slot& s) { s.seq = 0; }},
        {"kind none", [](ly::slot& s) { s.kind = 0; }},
        {"kind past the last",
         [](ly::slot& s) { s.kind = std::uint8_t(ly::event_kind::last) + 1; }},
        {"kind 255", [](ly::slot& s) { s.kind = 255; }},
        {"unknown flag", [](ly::slot& s) { s.flags = 1u << 7; }},
        {"known and unknown flags", [](ly::slot& s) { s.flags = ly::flag_error | (1u << 2); }},
        {"plugin id at capacity", [](ly::slot& s) { s.plugin = capacity; }},
        {"plugin id huge", [](ly::slot& s) { s.plugin = ~0u; }},
        {"op id at capacity", [](ly::slot& s) { s.op = capacity; }},
        {"table id at capacity", [](ly::slot& s) { s.table = capacity; }},
        {"tenant id at capacity", [](ly::slot& s) { s.tenant = capacity; }},
        {"plugin id 0 (the empty name)", [](ly::slot& s) { s.plugin = ly::name_empty; }},
        {"resource field past the last",
         [](ly::slot& s) {
             s.kind = std::uint8_t(ly::event_kind::resource);
             s.aux = std::uint32_t(ly::resource_field::last) + 1;
         }},
    };
    std::uint64_t head = 0;
    for (const auto& d : defects) {
        SCOPED_TRACE(d.name);
        got_.events.clear();
        ly::slot bad = query_at(head);
        d.apply(bad);
        h_.put(0, head, bad);
        ++head;
        h_.put(0, head, query_at(head, 77));  // a valid slot right behind it
        ++head;
        h_.publish(0, head);
        const auto r = drain(0);
        EXPECT_EQ(r.invalid, 1u);
        EXPECT_EQ(r.drained, 1u);
        EXPECT_FALSE(r.corrupt);
        ASSERT_EQ(got_.events.size(), 1u) << "an invalid slot never reaches the aggregation";
        EXPECT_EQ(got_.events[0].value, 77u);
        EXPECT_EQ(h_.lane(0).tail.load(), head);
    }
}

TEST_F(segment_lane, counts_an_event_the_aggregation_refuses_invalid) {
    h_.put(0, 0, query_at(0));
    h_.publish(0, 1);
    got_.accept = false;  // e.g. it names an id the producer never published
    const auto r = drain(0);
    EXPECT_EQ(r.drained, 0u);
    EXPECT_EQ(r.invalid, 1u);
    EXPECT_EQ(h_.lane(0).tail.load(), 1u);
}

TEST_F(segment_lane, converts_ticks_to_nanoseconds_only_on_a_tsc_segment) {
    hand_segment tsc({.clock = ly::clock_kind::tsc});
    auto seg = attach_ok(tsc);
    ASSERT_NE(seg, nullptr);
    ly::slot ticks = query_at(0);
    ticks.duration = 1000;
    ly::slot ns = query_at(1);
    ns.duration = 1000;
    ns.flags = ly::flag_duration_ns;
    tsc.put(0, 0, ticks);
    tsc.put(0, 1, ns);
    tsc.publish(0, 2);
    collector c;
    EXPECT_EQ(seg->drain_lane(0, false, 2.5, c.sink()).drained, 2u);
    ASSERT_EQ(c.events.size(), 2u);
    EXPECT_EQ(c.events[0].duration_ns, 2500u);
    EXPECT_EQ(c.events[1].duration_ns, 1000u);
}

TEST_F(segment_lane, reports_head_more_than_a_lane_ahead_of_tail_as_corrupt) {
    for (std::uint64_t i = 0; i < 65; ++i) h_.put(0, i, query_at(i));
    h_.publish(0, 65);
    const auto r = drain(0);
    EXPECT_TRUE(r.corrupt);
    EXPECT_EQ(r.drained + r.invalid, 0u) << "nothing is read from a corrupt lane";
    EXPECT_EQ(h_.lane(0).tail.load(), 0u);
    EXPECT_TRUE(got_.events.empty());
}

TEST_F(segment_lane, reports_head_behind_tail_as_corrupt) {
    h_.lane(1).tail.store(10);
    h_.publish(1, 9);
    const auto r = drain(1);
    EXPECT_TRUE(r.corrupt);
    EXPECT_EQ(h_.lane(1).tail.load(), 10u);
}

TEST_F(segment_lane, reports_indices_near_the_top_of_the_range_as_corrupt) {
    // head - tail wraps to a small number only if computed carelessly.
    h_.lane(0).tail.store(~0ull);
    h_.publish(0, 5);
    EXPECT_TRUE(drain(0).corrupt);
}

TEST_F(segment_lane, waits_on_the_shared_lane_for_a_claimed_unpublished_slot) {
    h_.put(shared, 0, query_at(0));
    ly::slot claimed{};  // claimed by a CAS on head, not yet written: its seq is still old
    h_.put(shared, 1, claimed);
    h_.put(shared, 2, query_at(2));
    h_.publish(shared, 3);  // on the shared lane, head counts claims
    auto r = drain(shared, false);
    EXPECT_EQ(r.drained, 1u);
    EXPECT_EQ(r.torn, 0u);
    EXPECT_EQ(r.invalid, 0u);
    EXPECT_EQ(h_.lane(shared).tail.load(), 1u) << "the drain must stop at the unpublished claim";
    // The producer finishes its write: the lane moves on.
    h_.put(shared, 1, query_at(1));
    r = drain(shared, false);
    EXPECT_EQ(r.drained, 2u);
    EXPECT_EQ(h_.lane(shared).tail.load(), 3u);
}

TEST_F(segment_lane, counts_a_claimed_unpublished_shared_slot_torn_once_the_producer_is_gone) {
    h_.put(shared, 0, query_at(0));
    h_.put(shared, 1, ly::slot{});
    h_.put(shared, 2, query_at(2));
    h_.publish(shared, 3);
    const auto r = drain(shared, true);
    EXPECT_EQ(r.drained, 2u);
    EXPECT_EQ(r.torn, 1u);
    EXPECT_EQ(r.invalid, 0u);
    EXPECT_EQ(h_.lane(shared).tail.load(), 3u);
}

TEST_F(segment_lane, counts_a_per_thread_slot_with_a_wrong_seq_invalid_not_torn) {
    // Per-thread lanes publish with head: a published slot with the wrong seq is garbage.
    h_.put(0, 0, ly::slot{});
    h_.publish(0, 1);
    const auto r = drain(0, false);
    EXPECT_EQ(r.invalid, 1u);
    EXPECT_EQ(r.torn, 0u);
    EXPECT_EQ(h_.lane(0).tail.load(), 1u);
}

// ---- drops ----

TEST_F(segment_lane, reports_new_drops_once_and_acknowledges_them) {
    h_.lane(0).dropped_full.store(5);
    h_.lane(shared).dropped_full.store(2);
    bool corrupt = false;
    EXPECT_EQ(seg_->take_new_drops(corrupt), 7u);
    EXPECT_FALSE(corrupt);
    EXPECT_EQ(h_.lane(0).drops_acked.load(), 5u);
    EXPECT_EQ(h_.lane(shared).drops_acked.load(), 2u);
    EXPECT_EQ(seg_->take_new_drops(corrupt), 0u) << "drops are reported once";
    h_.lane(0).dropped_full.store(8);
    EXPECT_EQ(seg_->take_new_drops(corrupt), 3u);
    EXPECT_FALSE(corrupt);
}

TEST_F(segment_lane, reports_drops_that_went_backwards_as_corrupt) {
    h_.lane(0).dropped_full.store(8);
    h_.lane(0).drops_acked.store(9);  // no agent ever acknowledged more than was dropped
    h_.lane(1).dropped_full.store(4);
    bool corrupt = false;
    EXPECT_EQ(seg_->take_new_drops(corrupt), 4u) << "the sound lanes are still reported";
    EXPECT_TRUE(corrupt);
    EXPECT_EQ(h_.lane(0).drops_acked.load(), 9u) << "a corrupt counter is left alone";
}

// ---- names ----

TEST_F(segment_lane, resolves_published_names_and_the_reserved_ones) {
    ASSERT_NE(seg_->name(plugin_id), nullptr);
    EXPECT_EQ(*seg_->name(plugin_id), "billing");
    EXPECT_EQ(*seg_->name(table_id), "invoices");
    ASSERT_NE(seg_->name(ly::name_empty), nullptr);
    EXPECT_EQ(*seg_->name(ly::name_empty), "");
    ASSERT_NE(seg_->name(ly::name_overflow), nullptr);
    EXPECT_EQ(*seg_->name(ly::name_overflow), ly::overflow_label);
}

TEST_F(segment_lane, returns_null_for_a_name_never_published) {
    EXPECT_EQ(seg_->name(table_id + 1), nullptr) << "beyond names_published";
    h_.name(table_id + 5, "unannounced", -1, false);  // text and length written, not published
    EXPECT_EQ(seg_->name(table_id + 5), nullptr) << "names_published is what publishes a name";
    EXPECT_EQ(seg_->name(capacity), nullptr) << "at capacity";
    EXPECT_EQ(seg_->name(~0u), nullptr);
    // Inside names_published but its length was never written.
    h_.name(table_id + 2, "late", 0);
    EXPECT_EQ(seg_->name(table_id + 1), nullptr);
    EXPECT_EQ(seg_->name(table_id + 2), nullptr);
    // A length beyond the entry is refused, not read past.
    h_.name(table_id + 3, "long", std::int64_t(ly::name_max_length) + 1);
    EXPECT_EQ(seg_->name(table_id + 3), nullptr);
    EXPECT_EQ(seg_->name(table_id + 5), nullptr);
}

TEST_F(segment_lane, resolves_a_name_once_published_later) {
    EXPECT_EQ(seg_->name(table_id + 1), nullptr);
    h_.name(table_id + 1, "late");
    ASSERT_NE(seg_->name(table_id + 1), nullptr);
    EXPECT_EQ(*seg_->name(table_id + 1), "late");
}

TEST_F(segment_lane, keeps_a_name_as_first_read_when_the_producer_rewrites_it) {
    ASSERT_NE(seg_->name(plugin_id), nullptr);
    h_.name(plugin_id, "spoofed");
    EXPECT_EQ(*seg_->name(plugin_id), "billing");
}

TEST_F(segment_lane, reads_a_name_of_the_maximum_length) {
    const std::string longest(ly::name_max_length, 'x');
    h_.name(table_id + 1, longest);
    ASSERT_NE(seg_->name(table_id + 1), nullptr);
    EXPECT_EQ(*seg_->name(table_id + 1), longest);
}

/// Raw name bytes and what the agent must make of them.
struct name_case {
    std::string raw;
    std::string want;
};

TEST_F(segment_lane, sanitises_names_to_valid_utf8_without_control_characters) {
    // clang-format off
    const std::vector<name_case> cases = {
        {"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"},
        {"a\xff" "b", "a?b"},                        // never valid in UTF-8
        {"line\nbreak\ttab\r", "line?break?tab?"},    // C0 controls
        {std::string("nul\0byte", 8), "nul?byte"},
        {"del\x7f", "del?"},
        {"cut\xc3", "cut?"},                         // sequence cut short by the end
        {"cut\xe2\x82", "cut??"},
        {"lone\x80" "cont", "lone?cont"},            // continuation byte without a lead
        {"bad\xc3(follow", "bad?(follow"},           // lead byte without a continuation
        {"over\xc0\x80long", "over??long"},          // overlong encoding of NUL
        {"over\xe0\x80\xafslash", "over???slash"},   // overlong encoding of '/'
        {"sur\xed\xa0\x80rogate", "sur???rogate"},   // UTF-16 surrogate half
        {"big\xf4\x90\x80\x80", "big????"},          // above U+10FFFF
        {"five\xf8\x88\x80\x80\x80", "five?????"},   // 5-byte form
        {"c1\xc2\x85" "nel", "c1?nel"},              // C1 control (NEL)
        {"quote\"back\\slash", "quote\"back\\slash"}, // escaped by the exposition, not here
    };
    // clang-format on
    std::uint32_t id = table_id + 1;
    for (const auto& c : cases) {
        SCOPED_TRACE(::testing::PrintToString(c.raw));
        h_.name(id, c.raw);
        const std::string* got = seg_->name(id);
        ASSERT_NE(got, nullptr);
        EXPECT_EQ(*got, c.want);
        ++id;
    }
}

}  // namespace
