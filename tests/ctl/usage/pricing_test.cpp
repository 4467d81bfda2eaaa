// Specification of usage pricing: every model against bills computed by hand, and the pricing file's checks.
#include "ctl/usage/pricing.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace {

using namespace plugmon::ctl::usage;

pricing parse(const std::string& text) { return parse_pricing(text, "pricing.toml"); }

timestamp ts(const char* text) {
    const auto t = parse_timestamp(text);
    if (!t) throw std::invalid_argument(std::string("bad timestamp in test: ") + text);
    return *t;
}

period range(const char* from, const char* to) { return {ts(from), ts(to)}; }

period nov() { return range("2026-11-01", "2026-12-01"); }

usage_row executions(const std::string& tenant, const std::string& plugin, std::uint64_t n) {
    usage_row r;
    r.tenant = tenant;
    r.plugin = plugin;
    r.executions = n;
    return r;
}

/// One plan, one tenant, one plugin: the amount in minor units.
std::int64_t bill(const std::string& plan_toml, std::uint64_t units, const period& when = nov()) {
    const pricing p = parse("currency = \"EUR\"\n[[plan]]\nname = \"p\"\n" + plan_toml);
    const std::vector<usage_row> rows{executions("acme", "billing", units)};
    const invoice inv = price(p, rows, when);
    EXPECT_EQ(inv.lines.size(), 1u);
    EXPECT_TRUE(inv.unmatched.empty());
    return inv.lines.empty() ? -1 : inv.lines[0].amount_minor;
}

constexpr const char* graduated = R"(model = "tiered"
tiers = [ { up_to = 1_000_000, unit_price = 0.0002 }, { up_to = 10_000_000, unit_price = 0.0001 }, { unit_price = 0.00005 } ]
)";
constexpr const char* volume = R"(model = "tiered"
mode = "volume"
tiers = [ { up_to = 1_000_000, unit_price = 0.0002 }, { up_to = 10_000_000, unit_price = 0.0001 }, { unit_price = 0.00005 } ]
)";
constexpr const char* free_tier = R"(model = "free_tier"
free_units = 100_000
unit_price = 0.0003
)";
constexpr const char* subscription = R"(model = "subscription"
monthly_fee = 49.0
included_units = 5_000_000
overage_unit_price = 0.0001
)";

// ---- models ----------------------------------------------------------------------------------------

TEST(pricing_per_call, charges_each_execution_at_the_unit_price) {
    // 1 234 567 × 0.0002 = 246.9134 → 246.91
    EXPECT_EQ(bill("model = \"per_call\"\nunit_price = 0.0002\n", 1'234'567), 24691);
    // nothing used, nothing owed
    EXPECT_EQ(bill("model = \"per_call\"\nunit_price = 0.0002\n", 0), 0);
}

TEST(pricing_per_call, counts_the_metric_the_plan_names) {
    const pricing p = parse(R"([[plan]]
name = "q"
model = "per_call"
metric = "queries"
unit_price = 0.001
)");
    usage_row r = executions("acme", "billing", 999'999);
    r.queries = 2'500;  // 2 500 × 0.001 = 2.50; executions are not counted
    const auto inv = price(p, std::vector<usage_row>{r}, nov());
    ASSERT_EQ(inv.lines.size(), 1u);
    EXPECT_EQ(inv.lines[0].metric, metric_kind::queries);
    EXPECT_EQ(inv.lines[0].amount_minor, 250);
}

TEST(pricing_per_cpu_second, charges_cpu_time_exactly_and_rounds_half_to_even) {
    const pricing p = parse(R"([[plan]]
name = "cpu"
model = "per_cpu_second"
unit_price = 0.05
)");
    usage_row r = executions("acme", "billing", 42);
    r.cpu_ns = 3'600'500'000'000;  // 3600.5 s × 0.05 = 180.025 exactly: a tie, to the even cent 180.02
    auto inv = price(p, std::vector<usage_row>{r}, nov());
    ASSERT_EQ(inv.lines.size(), 1u);
    EXPECT_EQ(inv.lines[0].metric, metric_kind::cpu_seconds);
    EXPECT_EQ(inv.lines[0].amount_atto, i128{180'025} * 1'000'000'000'000'000);
    EXPECT_EQ(inv.lines[0].amount_minor, 18002);
    r.cpu_ns = 3'600'700'000'000;  // 3600.7 × 0.05 = 180.035: a tie, to the even cent 180.04
    inv = price(p, std::vector<usage_row>{r}, nov());
    EXPECT_EQ(inv.lines[0].amount_minor, 18004);
}

TEST(pricing_tiered, graduated_prices_each_unit_in_its_own_tier) {
    // exactly at the first boundary: 1 000 000 × 0.0002 = 200.00, all in tier 1
    EXPECT_EQ(bill(graduated, 1'000'000), 20000);
    // one past it: 200 + 1 × 0.0001 = 200.0001 → 200.00
    EXPECT_EQ(bill(graduated, 1'000'001), 20000);
    // exactly at the second boundary: 200 + 9 000 000 × 0.0001 = 200 + 900 = 1100.00
    EXPECT_EQ(bill(graduated, 10'000'000), 110000);
    // into the last tier: 200 + 900 + 2 000 000 × 0.00005 = 200 + 900 + 100 = 1200.00
    EXPECT_EQ(bill(graduated, 12'000'000), 120000);
    // below the first boundary: 999 999 × 0.0002 = 199.9998 → 200.00
    EXPECT_EQ(bill(graduated, 999'999), 20000);
}

TEST(pricing_tiered, graduated_lists_one_component_per_tier_used) {
    const pricing p = parse(std::string("[[plan]]\nname = \"t\"\n") + graduated);
    const auto inv = price(p, std::vector<usage_row>{executions("acme", "billing", 12'000'000)}, nov());
    ASSERT_EQ(inv.lines.size(), 1u);
    const auto& c = inv.lines[0].components;
    ASSERT_EQ(c.size(), 3u);
    EXPECT_EQ(c[0].quantity_nano, i128{1'000'000} * nano);
    EXPECT_EQ(c[1].quantity_nano, i128{9'000'000} * nano);
    EXPECT_EQ(c[2].quantity_nano, i128{2'000'000} * nano);
    EXPECT_EQ(c[2].label, "tier 3");
}

TEST(pricing_tiered, volume_prices_every_unit_at_the_tier_the_total_reaches) {
    // exactly at up_to stays in that tier: 1 000 000 × 0.0002 = 200.00
    EXPECT_EQ(bill(volume, 1'000'000), 20000);
    // one past it moves everything to tier 2: 1 000 001 × 0.0001 = 100.0001 → 100.00
    EXPECT_EQ(bill(volume, 1'000'001), 10000);
    // exactly at the second boundary: 10 000 000 × 0.0001 = 1000.00
    EXPECT_EQ(bill(volume, 10'000'000), 100000);
    // last tier: 12 000 000 × 0.00005 = 600.00
    EXPECT_EQ(bill(volume, 12'000'000), 60000);
}

TEST(pricing_tiered, tiers_apply_to_a_tenant_across_its_plugins) {
    const pricing p = parse(std::string("[[plan]]\nname = \"t\"\n") + graduated);
    // 600 000 + 600 000 = 1 200 000 for acme: 1 000 000 × 0.0002 + 200 000 × 0.0001 = 200 + 20 = 220.00
    // (priced per plugin it would be 2 × 120 = 240.00)
    const std::vector<usage_row> rows{executions("acme", "billing", 600'000), executions("acme", "search", 600'000)};
    const auto inv = price(p, rows, nov());
    ASSERT_EQ(inv.lines.size(), 1u);
    EXPECT_EQ(inv.lines[0].amount_minor, 22000);
    EXPECT_EQ(inv.lines[0].plugins, (std::vector<std::string>{"billing", "search"}));
    EXPECT_EQ(inv.lines[0].quantity_nano, i128{1'200'000} * nano);
}

TEST(pricing_free_tier, nothing_is_owed_within_the_allowance) {
    EXPECT_EQ(bill(free_tier, 80'000), 0);
    EXPECT_EQ(bill(free_tier, 100'000), 0);  // exactly the allowance
}

TEST(pricing_free_tier, overage_is_charged_beyond_the_allowance) {
    // (250 000 − 100 000) × 0.0003 = 150 000 × 0.0003 = 45.00
    EXPECT_EQ(bill(free_tier, 250'000), 4500);
    // (100 001 − 100 000) × 0.0003 = 0.0003 → 0.00
    EXPECT_EQ(bill(free_tier, 100'001), 0);
}

TEST(pricing_free_tier, the_allowance_is_prorated_over_part_of_a_month) {
    // 1–16 November is 15 of 30 days: allowance 50 000; (80 000 − 50 000) × 0.0003 = 9.00
    EXPECT_EQ(bill(free_tier, 80'000, range("2026-11-01", "2026-11-16")), 900);
    const pricing p = parse(std::string("[[plan]]\nname = \"f\"\n") + free_tier);
    const auto inv = price(p, std::vector<usage_row>{executions("acme", "billing", 80'000)},
                           range("2026-11-01", "2026-11-16"));
    EXPECT_EQ(inv.lines[0].allowance_nano, i128{50'000} * nano);
    EXPECT_EQ(inv.lines[0].billable_nano, i128{30'000} * nano);
}

TEST(pricing_subscription, a_full_calendar_month_is_exactly_one_fee) {
    // 49.00, usage within the 5 000 000 included
    EXPECT_EQ(bill(subscription, 4'000'000), 4900);
    // 49 + (6 000 000 − 5 000 000) × 0.0001 = 49 + 100 = 149.00
    EXPECT_EQ(bill(subscription, 6'000'000), 14900);
    // months of 31, 28 and 29 days are all one fee
    EXPECT_EQ(bill(subscription, 0, range("2026-12-01", "2027-01-01")), 4900);
    EXPECT_EQ(bill(subscription, 0, range("2027-02-01", "2027-03-01")), 4900);
    EXPECT_EQ(bill(subscription, 0, range("2028-02-01", "2028-03-01")), 4900);
    // two whole months: 2 × 49 = 98.00, included 10 000 000
    EXPECT_EQ(bill(subscription, 10'000'000, range("2026-11-01", "2027-01-01")), 9800);
}

TEST(pricing_subscription, half_a_month_is_half_the_fee_and_half_the_included_units) {
    // 15 of 30 days: fee 24.50, included 2 500 000; (3 000 000 − 2 500 000) × 0.0001 = 50 → 74.50
    EXPECT_EQ(bill(subscription, 3'000'000, range("2026-11-01", "2026-11-16")), 7450);
    // with an RFC 3339 bound: 12 hours of November = 0.5/30 month → 49 / 60 = 0.81666… → 0.82
    EXPECT_EQ(bill(subscription, 0, range("2026-11-01T00:00:00Z", "2026-11-01T13:00:00+01:00")), 82);
}

TEST(pricing_subscription, a_range_across_two_months_prorates_each_month_by_its_own_length) {
    // 16 Nov – 16 Dec: November 15/30 = 0.5, December 15/31.
    //   fee       = 49 × 0.5 + 49 × 15/31 = 24.5 + 23.709677419… = 48.209677419…
    //   included  = 2 500 000 + 5 000 000 × 15/31 = 2 500 000 + 2 419 354.838709677 = 4 919 354.838709677
    //   overage   = (6 000 000 − 4 919 354.838709677) × 0.0001 = 1 080 645.161290323 × 0.0001 = 108.064516129…
    //   total     = 48.209677419… + 108.064516129… = 156.274193548… → 156.27
    const period p = range("2026-11-16", "2026-12-16");
    EXPECT_EQ(bill(subscription, 6'000'000, p), 15627);
    EXPECT_NEAR(months_covered(p), 0.5 + 15.0 / 31.0, 1e-12);
    const auto shares = month_shares(p);
    ASSERT_EQ(shares.size(), 2u);
    EXPECT_EQ(shares[0].covered_us * 2, shares[0].month_us);
    EXPECT_EQ(shares[1].covered_us * 31, shares[1].month_us * 15);
}

// ---- plans, tenants, unmatched -----------------------------------------------------------------------

TEST(pricing_plans, the_first_matching_plan_wins_and_unmatched_rows_are_reported) {
    const pricing p = parse(R"(currency = "EUR"
[[plan]]
name = "vip"
match = { tenants = ["acme"] }
model = "per_call"
unit_price = 0.001
[[plan]]
name = "standard"
match = { tenants = ["*"], plugins = ["billing", "search*"] }
model = "per_call"
unit_price = 0.0002
)");
    const std::vector<usage_row> rows{
        executions("acme", "billing", 1'000),     // vip: 1 000 × 0.001 = 1.00
        executions("globex", "billing", 1'000),   // standard
        executions("globex", "search-eu", 500),   // standard, same line: 1 500 × 0.0002 = 0.30
        executions("globex", "reports", 7),       // no plan
        executions("", "billing", 5'000),         // no tenant: "*" matches it; 5 000 × 0.0002 = 1.00
    };
    const auto inv = price(p, rows, nov());
    ASSERT_EQ(inv.lines.size(), 3u);
    EXPECT_EQ(inv.lines[0].tenant, "");
    EXPECT_EQ(inv.lines[0].amount_minor, 100);
    EXPECT_EQ(inv.lines[1].tenant, "acme");
    EXPECT_EQ(inv.lines[1].plan, "vip");
    EXPECT_EQ(inv.lines[1].amount_minor, 100);
    EXPECT_EQ(inv.lines[2].tenant, "globex");
    EXPECT_EQ(inv.lines[2].plan, "standard");
    EXPECT_EQ(inv.lines[2].plugins, (std::vector<std::string>{"billing", "search-eu"}));
    EXPECT_EQ(inv.lines[2].amount_minor, 30);
    ASSERT_EQ(inv.unmatched.size(), 1u);
    EXPECT_EQ(inv.unmatched[0].tenant, "globex");
    EXPECT_EQ(inv.unmatched[0].plugin, "reports");
    EXPECT_EQ(inv.unmatched[0].executions, 7u);
    EXPECT_EQ(inv.total_minor(), 230);
    EXPECT_EQ(inv.tenant_total_minor("globex"), 30);
}

TEST(pricing_plans, one_tenant_under_two_plans_gets_a_line_per_plan) {
    const pricing p = parse(R"([[plan]]
name = "search"
match = { plugins = "search*" }
model = "per_call"
unit_price = 0.01
[[plan]]
name = "rest"
model = "subscription"
monthly_fee = 10
included_units = 0
overage_unit_price = 0
)");
    const std::vector<usage_row> rows{executions("acme", "search", 100), executions("acme", "billing", 100)};
    const auto inv = price(p, rows, nov());
    ASSERT_EQ(inv.lines.size(), 2u);
    EXPECT_EQ(inv.lines[0].plan, "search");  // file order within a tenant
    EXPECT_EQ(inv.lines[0].amount_minor, 100);  // 100 × 0.01
    EXPECT_EQ(inv.lines[1].plan, "rest");
    EXPECT_EQ(inv.lines[1].amount_minor, 1000);  // one month's fee
    EXPECT_EQ(inv.tenant_total_minor("acme"), 1100);
}

// ---- money ----------------------------------------------------------------------------------------------

TEST(pricing_money, totals_are_sums_of_the_rounded_lines) {
    const pricing p = parse("[[plan]]\nname = \"tiny\"\nmodel = \"per_call\"\nunit_price = 0.000004\n");
    // each tenant: 1 000 × 0.000004 = 0.004 → 0.00; the exact sum 0.012 would show as 0.01, but the
    // total shown is the sum of the lines shown: 0.00
    const std::vector<usage_row> rows{executions("a", "x", 1'000), executions("b", "x", 1'000),
                                      executions("c", "x", 1'000)};
    const auto inv = price(p, rows, nov());
    ASSERT_EQ(inv.lines.size(), 3u);
    std::int64_t sum = 0;
    for (const auto& l : inv.lines) {
        EXPECT_EQ(l.amount_minor, 0);
        EXPECT_EQ(l.amount_atto, i128{4} * 1'000'000'000'000'000);  // 0.004 exactly
        sum += l.amount_minor;
    }
    EXPECT_EQ(inv.total_minor(), sum);
    EXPECT_EQ(inv.total_minor(), 0);
}

TEST(pricing_money, a_currency_without_minor_units_rounds_to_whole_units_half_to_even) {
    const std::string plan = "currency = \"JPY\"\ndecimals = 0\n[[plan]]\nname = \"y\"\nmodel = \"per_call\"\nunit_price = 0.5\n";
    const pricing p = parse(plan);
    const auto one = [&](std::uint64_t n) {
        return price(p, std::vector<usage_row>{executions("a", "x", n)}, nov()).lines.at(0).amount_minor;
    };
    EXPECT_EQ(one(1'234), 617);  // 617.0
    EXPECT_EQ(one(1'235), 618);  // 617.5 → 618 (even)
    EXPECT_EQ(one(1'233), 616);  // 616.5 → 616 (even)
}

TEST(pricing_money, formatting_is_exact) {
    EXPECT_EQ(format_minor(123450, 2), "1234.50");
    EXPECT_EQ(format_minor(5, 2), "0.05");
    EXPECT_EQ(format_minor(-5, 2), "-0.05");
    EXPECT_EQ(format_minor(617, 0), "617");
    EXPECT_EQ(format_nano(i128{1'500'000} * nano), "1500000");
    EXPECT_EQ(format_nano(12'500'000'000), "12.5");
    EXPECT_EQ(format_nano(1), "0.000000001");
    EXPECT_EQ(round_half_even(i128{25} * 1'000'000'000'000'000 / 10, 2), 0);  // 0.0025 → 0.00
    EXPECT_EQ(round_half_even(i128{15} * 1'000'000'000'000'000, 2), 2);      // 0.015 → 0.02
    EXPECT_EQ(round_half_even(i128{25} * 1'000'000'000'000'000, 2), 2);      // 0.025 → 0.02
    EXPECT_EQ(round_half_even(i128{25} * 1'000'000'000'000'000 + 1, 2), 3);  // just above the tie
}

TEST(pricing_money, prices_with_nine_decimals_are_exact) {
    // 1 000 000 000 × 0.000000001 = 1.00
    EXPECT_EQ(bill("model = \"per_call\"\nunit_price = 0.000000001\n", 1'000'000'000), 100);
}

// ---- timestamps ------------------------------------------------------------------------------------------

TEST(pricing_time, parses_dates_and_rfc3339) {
    EXPECT_EQ(format_timestamp(ts("2026-11-01")), "2026-11-01T00:00:00Z");
    EXPECT_EQ(format_timestamp(ts("2026-11-01T12:30:05Z")), "2026-11-01T12:30:05Z");
    EXPECT_EQ(format_timestamp(ts("2026-11-01T12:30:05+02:00")), "2026-11-01T10:30:05Z");
    EXPECT_EQ(format_timestamp(ts("2026-11-01 00:30:00-01:30")), "2026-11-01T02:00:00Z");
    EXPECT_EQ(format_timestamp(ts("2026-11-01T00:00:00.25z")), "2026-11-01T00:00:00.250000Z");
    EXPECT_EQ(format_timestamp(ts("2028-02-29")), "2028-02-29T00:00:00Z");
    for (const char* bad : {"", "2026-11-1", "2026-13-01", "2026-02-30", "2027-02-29", "2026-11-01T24:00:00Z",
                            "2026-11-01T12:00:00", "2026-11-01T12:00Z", "2026-11-01T12:00:00.1234567Z",
                            "2026-11-01T12:00:00+2:00", "2026-11-01x", "yesterday"})
        EXPECT_FALSE(parse_timestamp(bad)) << bad;
}

// ---- the pricing file ---------------------------------------------------------------------------------

struct bad_file {
    const char* what;
    std::string text;
    std::string key;
    std::vector<std::string> mentions;
};

TEST(pricing_file, every_bad_key_is_named_with_the_file_the_plan_and_the_problem) {
    const std::string head = "[[plan]]\nname = \"std\"\n";
    const std::vector<bad_file> cases = {
        {"syntax", "currency = \n", "file", {"pricing.toml:1:", "TOML syntax error"}},
        {"unknown top-level key", "curency = \"EUR\"\n" + head + "model = \"per_call\"\nunit_price = 1\n",
         "curency", {"pricing.toml:1:", "unknown key", "did you mean \"currency\""}},
        {"currency type", "currency = 1\n" + head + "model = \"per_call\"\nunit_price = 1\n", "currency",
         {"expected a string"}},
        {"decimals range", "decimals = 9\n" + head + "model = \"per_call\"\nunit_price = 1\n", "decimals",
         {"between 0 and 6"}},
        {"no plan", "currency = \"EUR\"\n", "plan", {"no [[plan]]"}},
        {"plan not a table array", "plan = 3\n", "plan", {"expected [[plan]] tables"}},
        {"missing name", "[[plan]]\nmodel = \"per_call\"\nunit_price = 1\n", "plan[1].name",
         {"pricing.toml:1:", "plan[1]: name: missing"}},
        {"duplicate name",
         head + "model = \"per_call\"\nunit_price = 1\n" + head + "model = \"per_call\"\nunit_price = 1\n",
         "plan[2].name", {"plan[2]: name:", "already named \"std\""}},
        {"missing model", head + "unit_price = 1\n", "plan[1].model", {"plan \"std\": model: missing"}},
        {"unknown model", head + "model = \"per-call\"\nunit_price = 1\n", "plan[1].model",
         {"pricing.toml:3:", "unknown model \"per-call\""}},
        {"misspelt key", head + "model = \"per_call\"\nunit_prize = 1\n", "plan[1].unit_prize",
         {"pricing.toml:4:", "plan \"std\": unit_prize: unknown key", "did you mean \"unit_price\""}},
        {"key of another model", head + "model = \"per_call\"\nunit_price = 1\nfree_units = 5\n",
         "plan[1].free_units", {"free_units: not used by model \"per_call\"", "free_tier"}},
        {"missing unit_price", head + "model = \"per_call\"\n", "plan[1].unit_price",
         {"unit_price: missing (required by model per_call)"}},
        {"negative price", head + "model = \"per_call\"\nunit_price = -0.5\n", "plan[1].unit_price",
         {"pricing.toml:4:", "unit_price: must be at least 0"}},
        {"price as text", head + "model = \"per_call\"\nunit_price = \"0.1\"\n", "plan[1].unit_price",
         {"expected a number, got a string"}},
        {"price too fine", head + "model = \"per_call\"\nunit_price = 0.0000000001\n", "plan[1].unit_price",
         {"more than 9 decimal places"}},
        {"price infinite", head + "model = \"per_call\"\nunit_price = inf\n", "plan[1].unit_price",
         {"finite"}},
        {"price huge", head + "model = \"per_call\"\nunit_price = 1e12\n", "plan[1].unit_price",
         {"must be at most"}},
        {"unknown metric", head + "model = \"per_call\"\nmetric = \"calls\"\nunit_price = 1\n", "plan[1].metric",
         {"unknown metric \"calls\""}},
        {"per_call on seconds", head + "model = \"per_call\"\nmetric = \"cpu_seconds\"\nunit_price = 1\n",
         "plan[1].metric", {"metric: model per_call counts calls"}},
        {"per_cpu_second on executions",
         head + "model = \"per_cpu_second\"\nmetric = \"executions\"\nunit_price = 1\n", "plan[1].metric",
         {"always counts cpu_seconds"}},
        {"match not a table", head + "match = \"*\"\nmodel = \"per_call\"\nunit_price = 1\n", "plan[1].match",
         {"match: expected a table"}},
        {"match unknown key", head + "match = { plugin = [\"x\"] }\nmodel = \"per_call\"\nunit_price = 1\n",
         "plan[1].match.plugin", {"did you mean \"plugins\""}},
        {"match empty list", head + "match = { tenants = [] }\nmodel = \"per_call\"\nunit_price = 1\n",
         "plan[1].match.tenants", {"matches nothing"}},
        {"match empty pattern", head + "match = { plugins = [\"\"] }\nmodel = \"per_call\"\nunit_price = 1\n",
         "plan[1].match.plugins", {"empty pattern"}},
        {"match number", head + "match = { tenants = 5 }\nmodel = \"per_call\"\nunit_price = 1\n",
         "plan[1].match.tenants", {"expected a list of glob patterns"}},
        {"tiers missing", head + "model = \"tiered\"\n", "plan[1].tiers", {"tiers: missing"}},
        {"tiers empty", head + "model = \"tiered\"\ntiers = []\n", "plan[1].tiers", {"at least one tier"}},
        {"tier not a table", head + "model = \"tiered\"\ntiers = [1]\n", "plan[1].tiers[1]",
         {"tiers[1]: expected a table"}},
        {"tier without price", head + "model = \"tiered\"\ntiers = [ { up_to = 5 }, { unit_price = 1 } ]\n",
         "plan[1].tiers[1].unit_price", {"tiers[1].unit_price: missing"}},
        {"middle tier unbounded", head + "model = \"tiered\"\ntiers = [ { unit_price = 1 }, { unit_price = 2 } ]\n",
         "plan[1].tiers[1].up_to", {"tiers[1].up_to: missing; only the last tier may be unbounded"}},
        {"last tier bounded", head + "model = \"tiered\"\ntiers = [ { up_to = 5, unit_price = 1 } ]\n",
         "plan[1].tiers[1].up_to", {"the last tier must have no up_to"}},
        {"tiers not increasing",
         head + "model = \"tiered\"\ntiers = [ { up_to = 5, unit_price = 1 }, { up_to = 5, unit_price = 1 }, "
                "{ unit_price = 1 } ]\n",
         "plan[1].tiers[2].up_to", {"tiers[2].up_to: must be greater than the previous tier's up_to (5)"}},
        {"tier up_to zero", head + "model = \"tiered\"\ntiers = [ { up_to = 0, unit_price = 1 }, { unit_price = 1 } ]\n",
         "plan[1].tiers[1].up_to", {"must be greater than 0"}},
        {"tier unknown key", head + "model = \"tiered\"\ntiers = [ { unit_prise = 1 } ]\n",
         "plan[1].tiers[1].unit_prise", {"did you mean \"unit_price\""}},
        {"tier mode", head + "model = \"tiered\"\nmode = \"flat\"\ntiers = [ { unit_price = 1 } ]\n",
         "plan[1].mode", {"unknown mode \"flat\"", "graduated or volume"}},
        {"free_units missing", head + "model = \"free_tier\"\nunit_price = 1\n", "plan[1].free_units",
         {"free_units: missing (required by model free_tier)"}},
        {"free_units negative", head + "model = \"free_tier\"\nfree_units = -1\nunit_price = 1\n",
         "plan[1].free_units", {"must be at least 0"}},
        {"monthly_fee missing", head + "model = \"subscription\"\nincluded_units = 1\noverage_unit_price = 1\n",
         "plan[1].monthly_fee", {"monthly_fee: missing"}},
        {"included_units missing", head + "model = \"subscription\"\nmonthly_fee = 1\noverage_unit_price = 1\n",
         "plan[1].included_units", {"included_units: missing"}},
        {"overage_unit_price missing", head + "model = \"subscription\"\nmonthly_fee = 1\nincluded_units = 1\n",
         "plan[1].overage_unit_price", {"overage_unit_price: missing"}},
        {"subscription with unit_price",
         head + "model = \"subscription\"\nmonthly_fee = 1\nincluded_units = 1\noverage_unit_price = 1\nunit_price = 1\n",
         "plan[1].unit_price", {"not used by model \"subscription\""}},
    };
    for (const auto& c : cases) {
        try {
            parse(c.text);
            ADD_FAILURE() << c.what << ": accepted";
        } catch (const pricing_error& e) {
            EXPECT_EQ(e.key(), c.key) << c.what << ": " << e.what();
            const std::string msg = e.what();
            EXPECT_EQ(msg.rfind("pricing.toml", 0), 0u) << c.what << ": " << msg;
            for (const auto& m : c.mentions) EXPECT_NE(msg.find(m), std::string::npos) << c.what << ": " << msg;
        }
    }
}

TEST(pricing_file, an_unreadable_file_is_named) {
    try {
        load_pricing("/nonexistent/pricing.toml");
        FAIL() << "loaded";
    } catch (const pricing_error& e) {
        EXPECT_EQ(e.key(), "file");
        EXPECT_NE(std::string(e.what()).find("/nonexistent/pricing.toml: cannot open"), std::string::npos);
    }
}

TEST(pricing_file, defaults_match_everything_and_count_executions) {
    const pricing p = parse("[[plan]]\nname = \"all\"\nmodel = \"per_call\"\nunit_price = 1\n");
    EXPECT_EQ(p.currency, "EUR");
    EXPECT_EQ(p.decimals, 2);
    ASSERT_EQ(p.plans.size(), 1u);
    EXPECT_EQ(p.plans[0].metric, metric_kind::executions);
    EXPECT_TRUE(p.plans[0].matches("", "anything"));
    EXPECT_NE(p.match("acme", "billing"), nullptr);
}

TEST(pricing_file, the_example_file_is_valid_and_prices_every_model) {
    const pricing p = load_pricing(std::string(PLUGMON_SOURCE_DIR) + "/deploy/pricing.example.toml");
    std::vector<bool> seen(5, false);
    for (const auto& pl : p.plans) seen[static_cast<std::size_t>(pl.model)] = true;
    EXPECT_EQ(seen, std::vector<bool>(5, true));
}

}  // namespace
