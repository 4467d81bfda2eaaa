// The probe's per-thread statement caches (text cache and shape cache, plugmon/probe.hpp) and the
// process's shape table: what stays cached, what a one-off text may evict, and that every path
// gives the id the statement's normalised text has.
#include <plugmon/probe.hpp>

#include "../../probe/shape_table.hpp"
#include "../../probe/statement_shape.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace {

namespace d = plugmon::detail;

d::lane_writer* writer() {
    d::lane_writer* w = d::writer();
    EXPECT_NE(w, nullptr);
    return w;
}

/// Runs fn on a new thread: a new lane writer, with empty caches.
template <class Fn>
void in_fresh_thread(Fn fn) {
    std::thread(fn).join();
}

std::size_t text_set(const std::string& sql) {
    return std::size_t(d::text_hash(sql.data(), sql.size()) >> 58);
}

/// The way of the text cache that holds sql, or -1.
int text_way(d::lane_writer* w, const std::string& sql) {
    const std::uint64_t h = d::text_hash(sql.data(), sql.size());
    const d::statement_cache_entry* set = &w->texts[(h >> 58) * d::statement_cache_ways];
    for (std::size_t i = 0; i < d::statement_cache_ways; ++i)
        if (set[i].key == h) return int(i);
    return -1;
}

bool shape_cached(d::lane_writer* w, const std::string& sql) {
    const std::uint64_t k = d::statement_shape(sql);
    const d::statement_cache_entry* set = &w->shapes[(k >> 57) * d::statement_cache_ways];
    for (std::size_t i = 0; i < d::statement_cache_ways; ++i)
        if (set[i].key == k) return true;
    return false;
}

/// `count` texts of distinct shapes (column c<i>) that all map to one text-cache set.
std::vector<std::string> texts_of_one_set(std::size_t count, const std::string& tag) {
    std::vector<std::string> out;
    const std::size_t want = text_set("select c0 from " + tag);
    for (int i = 0; out.size() < count; ++i) {
        std::string s = "select c" + std::to_string(i) + " from " + tag;
        if (text_set(s) == want) out.push_back(std::move(s));
    }
    return out;
}

TEST(statement_cache, a_text_seen_before_is_a_hit_with_the_id_of_its_statement) {
    d::lane_writer* w = writer();
    const std::string sql = "SELECT * FROM invoices WHERE id = 42";
    const std::uint32_t id = d::statement_cached(w, sql);
    ASSERT_NE(id, 0u);
    EXPECT_GE(text_way(w, sql), 0);
    EXPECT_TRUE(shape_cached(w, sql));
    EXPECT_EQ(d::statement_cached(w, sql), id);
    EXPECT_EQ(d::intern_statement("select * from invoices where id = 7"), id);
    EXPECT_EQ(d::statement_cached(w, ""), 0u);
}

TEST(statement_cache, literal_variants_are_one_shape_and_one_id) {
    d::lane_writer* w = writer();
    const std::uint32_t id = d::statement_cached(w, "update accounts set balance = 0 where id = 0");
    ASSERT_NE(id, 0u);
    for (int i = 1; i < 2000; ++i) {
        const std::string sql = "update accounts set balance = " + std::to_string(i * 13) +
                                " where id = " + std::to_string(i);
        ASSERT_EQ(d::statement_cached(w, sql), id) << sql;
        ASSERT_TRUE(shape_cached(w, sql));
    }
    // other spacing and case: another shape key, the same statement
    EXPECT_EQ(d::statement_cached(w, "UPDATE accounts SET balance=1 WHERE id=2"), id);
}

TEST(statement_cache, a_hit_moves_its_text_up_one_way) {
    in_fresh_thread([] {
        d::lane_writer* w = writer();
        const auto texts = texts_of_one_set(4, "promote");
        for (const auto& t : texts) ASSERT_NE(d::statement_cached(w, t), 0u);
        for (int i = 0; i < 4; ++i)
            ASSERT_EQ(text_way(w, texts[std::size_t(i)]), i);  // free ways first
        d::statement_cached(w, texts[3]);
        EXPECT_EQ(text_way(w, texts[3]), 2);
        EXPECT_EQ(text_way(w, texts[2]), 3);
        d::statement_cached(w, texts[3]);
        d::statement_cached(w, texts[3]);
        EXPECT_EQ(text_way(w, texts[3]), 0);
        EXPECT_EQ(text_way(w, texts[0]), 1);
    });
}

TEST(statement_cache, one_off_texts_do_not_evict_texts_in_use) {
    in_fresh_thread([] {
        d::lane_writer* w = writer();
        const auto texts = texts_of_one_set(40, "evict");
        const std::string& hot = texts[0];
        const std::string& warm = texts[1];
        d::statement_cached(w, hot);
        d::statement_cached(w, warm);
        for (int i = 0; i < 3; ++i) {
            d::statement_cached(w, hot);
            d::statement_cached(w, warm);
        }
        // each hit moves its text up one way: the two take turns at ways 0 and 1
        ASSERT_LE(text_way(w, hot), 1);
        ASSERT_LE(text_way(w, warm), 1);
        ASSERT_GE(text_way(w, hot), 0);
        ASSERT_GE(text_way(w, warm), 0);
        // 38 one-off texts of the same set: each evicts only the least recently inserted one
        for (std::size_t i = 2; i < texts.size(); ++i) d::statement_cached(w, texts[i]);
        EXPECT_GE(text_way(w, hot), 0) << "a one-off text evicted a text in use";
        EXPECT_LE(text_way(w, hot), 1);
        EXPECT_GE(text_way(w, warm), 0) << "a one-off text evicted a text in use";
        EXPECT_LE(text_way(w, warm), 1);
        EXPECT_EQ(text_way(w, texts[2]), -1) << "the oldest one-off text was kept";
        EXPECT_EQ(text_way(w, texts.back()), 2);
        EXPECT_EQ(text_way(w, texts[texts.size() - 2]), 3);
    });
}

TEST(statement_cache, sixteen_rotating_texts_all_stay_cached) {
    in_fresh_thread([] {
        d::lane_writer* w = writer();
        std::vector<std::string> texts;
        for (int i = 0; i < 16; ++i)
            texts.push_back("SELECT o.id, o.total FROM orders o WHERE o.region_" +
                            std::to_string(i) +
                            " = 'north' AND o.created_at > now() - interval '7 days' LIMIT 100");
        for (int round = 0; round < 3; ++round)
            for (const auto& t : texts) d::statement_cached(w, t);
        for (const auto& t : texts) EXPECT_GE(text_way(w, t), 0) << t;
    });
}

TEST(statement_cache, hundreds_of_shapes_stay_in_the_shape_cache) {
    in_fresh_thread([] {
        d::lane_writer* w = writer();
        std::vector<std::string> shapes;
        for (int i = 0; i < 256; ++i)
            shapes.push_back("select s" + std::to_string(i) + " from shapes where k = 1");
        for (const auto& s : shapes) d::statement_cached(w, s);
        std::size_t kept = 0;
        for (const auto& s : shapes) kept += shape_cached(w, s) ? 1 : 0;
        // 256 keys in 128 sets of 4: only sets that drew more than 4 lose any
        EXPECT_GE(kept, 240u);
    });
}

TEST(shape_table, finds_what_was_inserted_and_stops_taking_keys_at_three_quarters) {
    d::shape_table t(64);
    std::uint32_t id = 99;
    EXPECT_FALSE(t.find(12345, id));
    for (std::uint64_t k = 1; k <= 100; ++k) t.insert(k * 0x9e3779b97f4a7c15ull, std::uint32_t(k));
    EXPECT_EQ(t.size(), 48u);  // 3/4 of 64
    std::size_t found = 0;
    for (std::uint64_t k = 1; k <= 100; ++k) {
        if (!t.find(k * 0x9e3779b97f4a7c15ull, id)) continue;
        EXPECT_EQ(id, std::uint32_t(k));
        ++found;
    }
    EXPECT_EQ(found, 48u);
    t.insert(1 * 0x9e3779b97f4a7c15ull, 7);  // a key's id never changes
    ASSERT_TRUE(t.find(1 * 0x9e3779b97f4a7c15ull, id));
    EXPECT_EQ(id, 1u);
}

TEST(shape_table, readers_never_see_a_key_without_its_id) {
    d::shape_table t(1 << 12);
    std::atomic<bool> done{false};
    std::thread reader([&] {
        std::uint32_t id = 0;
        while (!done.load()) {
            for (std::uint64_t k = 1; k <= 2000; ++k)
                if (t.find(k << 20 | 1, id)) {
                    ASSERT_EQ(id, std::uint32_t(k));
                }
        }
    });
    for (std::uint64_t k = 1; k <= 2000; ++k) t.insert(k << 20 | 1, std::uint32_t(k));
    done.store(true);
    reader.join();
}

}  // namespace
