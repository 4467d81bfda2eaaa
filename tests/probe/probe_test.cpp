// Probe unit tests without an agent: lanes fill and count drops, interning is bounded, scopes
// record what they say. Runs with PLUGMON_LANE_SLOTS=64, PLUGMON_NAMES=32, PLUGMON_LANES=4.
#include <plugmon/probe.hpp>

#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

namespace {

// Interned before any test floods the 32-entry name table, whatever order the tests run in.
const plugmon::Name acme_name{"acme"}, globex_name{"globex"};

std::uint64_t recorded() {
    const auto s = plugmon::probe_stats();
    return s.events_written + s.events_dropped;
}

TEST(layout, geometry_is_page_aligned_and_ordered) {
    const auto g = plugmon::layout::make_geometry(64, 16384, 4096);
    EXPECT_EQ(g.lanes_offset, plugmon::layout::header_size);
    EXPECT_EQ(g.names_offset % 4096, 0u);
    EXPECT_EQ(g.slots_offset % 4096, 0u);
    EXPECT_GE(g.names_offset, g.lanes_offset + 65 * plugmon::layout::lane_header_size);
    EXPECT_GE(g.slots_offset, g.names_offset + 4096 * plugmon::layout::name_entry_size);
    EXPECT_EQ(g.statements_offset, g.slots_offset + 65ull * 16384 * 64);
    EXPECT_EQ(g.segment_size, g.statements_offset + std::uint64_t(plugmon::layout::default_statement_capacity) *
                                                        plugmon::layout::statement_entry_size);
    static_assert(sizeof(plugmon::layout::slot) == 64);
    static_assert(alignof(plugmon::layout::lane_header) == 64);
}

TEST(lane, drops_and_counts_when_full) {
    // A fresh thread gets a fresh lane of 64 slots; nobody drains it (no agent).
    std::uint64_t written_before = plugmon::probe_stats().events_written;
    std::uint64_t dropped_before = plugmon::probe_stats().events_dropped;
    std::thread([] {
        plugmon::Plugin p{"filler"};
        for (int i = 0; i < 100; ++i) p.record_query("SELECT", "t", std::chrono::nanoseconds{5});
    }).join();
    const auto s = plugmon::probe_stats();
    EXPECT_EQ(s.events_written - written_before, 64u);
    EXPECT_EQ(s.events_dropped - dropped_before, 36u);
    EXPECT_FALSE(s.attached);
}

TEST(lane, released_at_thread_exit_and_reused) {
    const auto before = plugmon::probe_stats().lanes_in_use;
    std::thread([before] {
        plugmon::Plugin p{"reuse"};
        p.count("x");
        EXPECT_EQ(plugmon::probe_stats().lanes_in_use, before + 1);
    }).join();
    EXPECT_EQ(plugmon::probe_stats().lanes_in_use, before);
}

TEST(lane, falls_back_to_the_shared_lane_when_all_lanes_are_taken) {
    // PLUGMON_LANES=4: hold 4 threads on lanes; a 5th thread records through the shared lane.
    std::atomic<int> ready{0};
    std::atomic<bool> go{false};
    const auto base = plugmon::probe_stats().lanes_in_use;
    std::vector<std::thread> holders;
    const int free_lanes = 4 - int(base);
    for (int i = 0; i < free_lanes; ++i)
        holders.emplace_back([&] {
            plugmon::Plugin p{"holder"};
            p.count("hold");
            ready.fetch_add(1);
            while (!go.load()) std::this_thread::yield();
        });
    while (ready.load() < free_lanes) std::this_thread::yield();
    EXPECT_EQ(plugmon::probe_stats().lanes_in_use, 4u);
    const auto r0 = recorded();
    std::thread([] {
        plugmon::Plugin p{"overflowing"};
        for (int i = 0; i < 10; ++i) p.count("shared");
    }).join();
    EXPECT_EQ(recorded() - r0, 10u);
    EXPECT_EQ(plugmon::probe_stats().lanes_in_use, 4u);  // the shared lane is not a lane of its own
    go.store(true);
    for (auto& t : holders) t.join();
}

TEST(interning, same_text_same_id_from_any_buffer) {
    plugmon::Name a{"invoices"};
    std::string buf = "invoices";
    plugmon::Name b{buf};
    EXPECT_EQ(a.id(), b.id());
    EXPECT_GE(a.id(), plugmon::layout::first_name_id);
    EXPECT_EQ(plugmon::Name{""}.id(), plugmon::layout::name_empty);
}

TEST(interning, cache_never_returns_a_stale_id_for_a_reused_buffer) {
    plugmon::Plugin p{"cache"};
    auto* w = plugmon::detail::writer();
    ASSERT_NE(w, nullptr);
    char buf[16] = "alpha";
    const auto alpha = plugmon::detail::intern_cached(w, buf);
    std::strcpy(buf, "bravo");  // same address, new text
    const auto bravo = plugmon::detail::intern_cached(w, buf);
    EXPECT_NE(alpha, bravo);
    EXPECT_EQ(bravo, plugmon::Name{"bravo"}.id());
    EXPECT_EQ(alpha, plugmon::Name{"alpha"}.id());
}

TEST(interning, cache_hit_compares_every_byte_of_every_length) {
    // The hit path compares short names with overlapping word loads: each length class must
    // still see a difference in any single byte.
    for (std::size_t n = 0; n <= 40; ++n) {
        const std::string a(n, 'x');
        EXPECT_TRUE(plugmon::detail::same_bytes(a.data(), std::string(a).data(), n)) << n;
        for (std::size_t i = 0; i < n; ++i) {
            std::string b = a;
            b[i] = 'y';
            EXPECT_FALSE(plugmon::detail::same_bytes(a.data(), b.data(), n)) << "length " << n << " byte " << i;
        }
    }
}

TEST(interning, is_bounded_and_folds_overflow) {
    // PLUGMON_NAMES=32 (including the two reserved ids): flood it.
    std::vector<std::uint32_t> ids;
    for (int i = 0; i < 64; ++i) ids.push_back(plugmon::Name{"flood-" + std::to_string(i)}.id());
    EXPECT_EQ(ids.back(), plugmon::layout::name_overflow);
    EXPECT_LT(ids.front(), 32u);
    for (auto id : ids) EXPECT_LT(id, 32u);
    // Names interned before the table filled keep their ids.
    EXPECT_EQ(plugmon::Name{"invoices"}.id(), plugmon::Name{std::string("invoices")}.id());
}

TEST(interning, long_names_are_truncated_not_rejected) {
    const std::string long_name(500, 'x');
    const auto id = plugmon::Name{long_name}.id();
    EXPECT_EQ(id, plugmon::Name{long_name.substr(0, plugmon::layout::name_max_length)}.id());
}

TEST(statements, texts_differing_only_in_literals_share_one_id_and_the_table_is_bounded) {
    namespace d = plugmon::detail;
    const std::uint32_t a = d::intern_statement("SELECT * FROM invoices WHERE id = 42");
    EXPECT_NE(a, 0u);
    EXPECT_EQ(d::intern_statement("select *  from invoices where id = 7 -- again"), a);
    EXPECT_NE(d::intern_statement("SELECT * FROM invoices WHERE customer = 'x'"), a);
    // PLUGMON_STATEMENTS=8 here: beyond it, queries keep recording without a statement (id 0)
    std::uint32_t last = 1;
    for (int i = 0; i < 20; ++i) last = d::intern_statement("SELECT c" + std::to_string(i) + " FROM t");
    EXPECT_EQ(last, 0u);
    EXPECT_EQ(d::intern_statement(""), 0u);
}

TEST(statements, a_query_with_a_statement_is_still_exactly_one_event) {
    const plugmon::Plugin plugin{"stmt"};
    const plugmon::Statement prepared{"UPDATE t SET x = $1"};
    const std::uint64_t before = recorded();
    {
        auto q = plugin.query("SELECT", "t");
        q.statement("SELECT x FROM t WHERE id = 1");
    }
    {
        auto q = plugin.query("UPDATE", "t");
        q.statement(prepared);
    }
    plugin.record_query("SELECT", "t", std::chrono::milliseconds(3), 1, true, "SELECT 1");
    EXPECT_EQ(recorded() - before, 3u);
}

TEST(tenant, scopes_nest_and_restore) {
    EXPECT_EQ(plugmon::detail::tls_tenant, 0u);
    {
        plugmon::TenantScope a{"acme"};
        const auto acme = plugmon::detail::tls_tenant;
        EXPECT_EQ(acme, acme_name.id());
        EXPECT_NE(acme, 0u);
        {
            plugmon::TenantScope b{"globex"};
            EXPECT_EQ(plugmon::detail::tls_tenant, globex_name.id());
            EXPECT_NE(plugmon::detail::tls_tenant, acme);
        }
        EXPECT_EQ(plugmon::detail::tls_tenant, acme);
    }
    EXPECT_EQ(plugmon::detail::tls_tenant, 0u);
}

TEST(probe, every_api_call_records_exactly_one_event) {
    std::thread([] {
        plugmon::Plugin p{"api"};
        const auto r0 = recorded();
        { auto q = p.query("SELECT", "t"); q.rows(3); }
        { PLUGMON_QUERY(q, p, "UPDATE", "t"); q.fail(); }
        p.record_query("INSERT", "t", std::chrono::microseconds{7}, 1, false);
        { auto e = p.execution(); }
        p.count("hits", 5);
        p.pool(1, 2, 3);
        EXPECT_EQ(recorded() - r0, 6u);
    }).join();
}

TEST(probe, execution_marks_failure_when_an_exception_escapes) {
    std::thread([] {
        plugmon::Plugin p{"throws"};
        auto* w = plugmon::detail::writer();
        ASSERT_NE(w, nullptr);
        const auto head = w->head;
        try {
            auto e = p.execution();
            throw std::runtime_error("boom");
        } catch (const std::runtime_error&) {
        }
        ASSERT_EQ(w->head, head + 1);
        const auto& slot = w->slots[head & w->mask];
        EXPECT_EQ(slot.kind, std::uint8_t(plugmon::layout::event_kind::execution));
        EXPECT_TRUE(slot.flags & plugmon::layout::flag_error);
        EXPECT_EQ(slot.seq, std::uint32_t(head + 1));
    }).join();
}

}  // namespace
