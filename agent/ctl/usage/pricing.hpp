// Usage pricing for plugmonctl: the pricing file (TOML), its validation, and invoice lines from usage rows.
#pragma once

#include "store/read/usage_row.hpp"

#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

/// Everything here is pure: no I/O except load_pricing(), no shared state, so any function may be
/// called from any thread. Functions that build strings or vectors allocate (std::bad_alloc).
namespace plugmon::ctl::usage {

/// Signed 128-bit integer for exact money arithmetic (GCC/Clang extension, hence __extension__).
__extension__ typedef __int128 i128;

/// Fixed-point scales. Quantities are held in nano-units (1e-9 of an execution, a query, a row or a
/// second); prices in nano-currency per unit; amounts in atto-currency (1e-18), so quantity × price
/// is exact. Rounding to the currency's minor unit happens once per invoice line.
inline constexpr std::int64_t nano = 1'000'000'000;
inline constexpr i128 atto_per_unit = i128{nano} * nano;

/// A point in time, UTC, with PostgreSQL's (microsecond) resolution.
using timestamp = std::chrono::sys_time<std::chrono::microseconds>;

/// The half-open range [from, to) a bill covers.
struct period {
    timestamp from;
    timestamp to;
};

/// "YYYY-MM-DD" (midnight UTC) or RFC 3339 ("2026-11-01T00:00:00Z", "…T01:30:00.5+01:00", a space
/// instead of 'T' and a lower-case 't'/'z' are accepted). Returns nullopt for anything else,
/// including impossible dates (2026-02-30) and fractions finer than a microsecond. Pure, no throw.
std::optional<timestamp> parse_timestamp(std::string_view text);

/// "2026-11-01T00:00:00Z", with ".ffffff" only when there are sub-second digits. No throw except bad_alloc.
std::string format_timestamp(timestamp t);

/// One calendar month's share of a period: the overlap and the month's length, in microseconds.
struct month_share {
    std::chrono::year_month month;
    std::int64_t covered_us = 0;
    std::int64_t month_us = 0;
};

/// The UTC calendar months that [from, to) touches, in order, with the part of each it covers.
/// A whole calendar month is exactly one share of covered_us == month_us. Empty when from >= to.
std::vector<month_share> month_shares(const period& p);

/// Σ covered_us / month_us over month_shares(p), as a double: for display only (the amounts are
/// computed per month in integers).
double months_covered(const period& p);

/// What usage is totalled per (tenant, plugin) over a period: the store's row of plugmon.usage().
using usage_row = plugmon::agent::store::usage_row;

/// What a plan counts.
enum class metric_kind { executions, queries, rows, cpu_seconds, query_seconds };
/// How a plan turns the count into money.
enum class model_kind { per_call, per_cpu_second, tiered, free_tier, subscription };
/// How tiers price a quantity: each unit in its own tier, or every unit at the final tier's price.
enum class tier_mode { graduated, volume };

/// The spelling used in pricing files and output: "executions", "per_call", "graduated", ….
const char* to_string(metric_kind m) noexcept;
const char* to_string(model_kind m) noexcept;
const char* to_string(tier_mode m) noexcept;

/// The quantity of `m` in `row`, in nano-units (counts × 1e9; seconds are the nanoseconds as-is).
i128 quantity_of(const usage_row& row, metric_kind m) noexcept;

/// One tier: units up to and including `up_to` (none: unbounded, last tier only).
struct tier {
    std::optional<i128> up_to_nano;
    std::int64_t unit_price_nano = 0;
};

/// One [[plan]] of the pricing file, validated.
struct plan {
    std::string name;
    std::vector<std::string> tenants{"*"};  ///< glob patterns (`*`, `?`, `[…]`)
    std::vector<std::string> plugins{"*"};
    model_kind model = model_kind::per_call;
    metric_kind metric = metric_kind::executions;
    std::int64_t unit_price_nano = 0;  ///< per_call, per_cpu_second, free_tier (overage)
    std::vector<tier> tiers;           ///< tiered
    tier_mode mode = tier_mode::graduated;
    i128 free_units_nano = 0;                  ///< free_tier, per calendar month
    std::int64_t monthly_fee_nano = 0;         ///< subscription
    i128 included_units_nano = 0;              ///< subscription, per calendar month
    std::int64_t overage_unit_price_nano = 0;  ///< subscription

    /// True when some tenant pattern matches `tenant` and some plugin pattern matches `plugin`.
    bool matches(std::string_view tenant, std::string_view plugin) const;
};

/// A whole pricing file, validated.
struct pricing {
    std::string currency = "EUR";
    int decimals = 2;  ///< digits of the minor unit (2: cents)
    std::vector<plan> plans;
    std::string source;  ///< the file name, for messages

    /// The first plan that matches (tenant, plugin), or nullptr.
    const plan* match(std::string_view tenant, std::string_view plugin) const;
};

/// A pricing file that cannot be used. what() is "FILE:LINE:COL: plan \"NAME\": KEY: problem"
/// (the parts that apply); the CLI prints it and exits with status 2.
class pricing_error : public std::runtime_error {
public:
    pricing_error(std::string key, const std::string& message);
    /// The key at fault, dotted ("plan[2].tiers[1].up_to", "currency"; "file" for the file itself).
    const std::string& key() const noexcept { return key_; }

private:
    std::string key_;
};

/// Parses and validates pricing text; `source` names it in messages. Throws pricing_error.
pricing parse_pricing(std::string_view text, const std::string& source);

/// Reads `path` (at most 1 MiB) and parses it. Throws pricing_error (also for an unreadable file).
pricing load_pricing(const std::string& path);

/// One priced part of an invoice line: `quantity` units at `unit_price` (or a fixed `amount`).
struct component {
    std::string label;       ///< "usage", "tier 2", "free allowance", "overage", "monthly fee"
    i128 quantity_nano = 0;  ///< units in this part (for "monthly fee": months × 1e9)
    std::int64_t unit_price_nano = 0;
    i128 amount_atto = 0;  ///< exact, before rounding
};

/// What one tenant owes under one plan: its matched plugins taken together.
struct invoice_line {
    std::string tenant;
    std::string plan;
    model_kind model = model_kind::per_call;
    metric_kind metric = metric_kind::executions;
    std::vector<std::string> plugins;  ///< the matched plugins, sorted
    i128 quantity_nano = 0;            ///< the metric summed over those plugins
    i128 allowance_nano = 0;           ///< free or included units for the period (prorated)
    i128 billable_nano = 0;            ///< quantity beyond the allowance
    std::vector<component> components;
    i128 amount_atto = 0;           ///< Σ components, exact
    std::int64_t amount_minor = 0;  ///< amount_atto rounded half-even to the minor unit
};

/// The priced bill of a period.
struct invoice {
    std::string currency;
    int decimals = 2;
    period when{};
    std::vector<invoice_line> lines;   ///< ordered by tenant, then plan order in the file
    std::vector<usage_row> unmatched;  ///< rows no plan matches, by tenant then plugin
    /// Σ amount_minor of the tenant's lines / of all lines: the totals are sums of the rounded
    /// lines, so what is shown always adds up.
    std::int64_t tenant_total_minor(std::string_view tenant) const noexcept;
    std::int64_t total_minor() const noexcept;
};

/// Prices `rows` over `when` with `p`. Pure. Every row is either in some line or in `unmatched`.
/// Throws std::overflow_error when an amount would not fit (beyond any real bill).
invoice price(const pricing& p, std::span<const usage_row> rows, const period& when);

/// Rounds an atto-currency amount half-to-even to `decimals` digits, as a count of minor units.
std::int64_t round_half_even(i128 amount_atto, int decimals) noexcept;

/// "1234.50" for 123450 with 2 decimals; "-0.05" for -5. No throw except bad_alloc.
std::string format_minor(std::int64_t minor, int decimals);

/// value / 10^scale as a decimal without trailing zeros: format_decimal(125, 1) is "12.5".
std::string format_decimal(i128 value, int scale);

/// A nano-scaled value as a decimal without trailing zeros: "1500000", "12.5", "0.000000001".
std::string format_nano(i128 value_nano);

/// The same as a double (for JSON numbers; exact for counts up to 2^53).
double to_double_nano(i128 value_nano) noexcept;

}  // namespace plugmon::ctl::usage
