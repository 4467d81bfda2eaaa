// Specifies the statement book: totals per (plugin, statement), the bound on entries, the ranking
// by total time, and the ring of recent slow queries.
#include "aggregate/statements.hpp"

#include <gtest/gtest.h>

#include <string>

namespace plugmon::agent {
namespace {

TEST(statement_book, totals_accumulate_per_plugin_and_fingerprint) {
    statement_book book(10);
    statement_stats* a = book.find_or_create("billing", "select ? from t", 1);
    EXPECT_EQ(book.find_or_create("billing", "select ? from t", 1), a);
    EXPECT_NE(book.find_or_create("search", "select ? from t", 1), a);  // same text, other plugin
    statement_book::record(*a, 1000, 5, false, false);
    statement_book::record(*a, 3000, 1, true, true);
    EXPECT_EQ(a->calls.get(), 2u);
    EXPECT_EQ(a->errors.get(), 1u);
    EXPECT_EQ(a->rows.get(), 6u);
    EXPECT_EQ(a->total_ns.get(), 4000u);
    EXPECT_EQ(a->max_ns.get(), 3000u);
    EXPECT_EQ(a->slow.get(), 1u);
}

TEST(statement_book, is_bounded_and_folds_further_statements_per_plugin) {
    statement_book book(10, 3);
    for (std::uint64_t fp = 1; fp <= 3; ++fp) book.find_or_create("p", "s" + std::to_string(fp), fp);
    statement_stats* fold = book.find_or_create("p", "s4", 4);
    EXPECT_EQ(fold->text, "__overflow__");
    EXPECT_EQ(fold->fingerprint, 0u);
    EXPECT_EQ(book.find_or_create("p", "s5", 5), fold);
    EXPECT_EQ(book.find_or_create("q", "s6", 6)->text, "__overflow__");  // another plugin's own fold
    EXPECT_EQ(book.size(), 5u);  // three, plus one fold entry per plugin
}

TEST(statement_book, top_ranks_each_plugins_statements_by_total_time) {
    statement_book book(10);
    for (std::uint64_t fp = 1; fp <= 5; ++fp)
        statement_book::record(*book.find_or_create("p", "s" + std::to_string(fp), fp), fp * 100, 0, false, false);
    statement_book::record(*book.find_or_create("q", "other", 9), 1, 0, false, false);
    const auto top = book.top(nullptr, 2);
    ASSERT_EQ(top.size(), 3u);  // two of p, one of q
    EXPECT_EQ(top[0]->fingerprint, 5u);
    EXPECT_EQ(top[1]->fingerprint, 4u);
    EXPECT_EQ(top[2]->plugin, "q");
    const std::string q = "q";
    EXPECT_EQ(book.top(&q, 10).size(), 1u);
}

TEST(statement_book, keeps_the_most_recent_slow_samples_newest_first) {
    statement_book book(3);
    for (int i = 0; i < 5; ++i) {
        slow_sample s;
        s.plugin = i % 2 ? "odd" : "even";
        s.duration_ns = std::uint64_t(i);
        book.add_slow(s);
    }
    EXPECT_EQ(book.slow_total(), 5u);
    const auto all = book.recent(nullptr, 10);
    ASSERT_EQ(all.size(), 3u);
    EXPECT_EQ(all[0].duration_ns, 4u);
    EXPECT_EQ(all[2].duration_ns, 2u);
    const std::string odd = "odd";
    const auto some = book.recent(&odd, 10);
    ASSERT_EQ(some.size(), 1u);
    EXPECT_EQ(some[0].duration_ns, 3u);
    EXPECT_EQ(book.recent(nullptr, 1).size(), 1u);
}

}  // namespace
}  // namespace plugmon::agent
