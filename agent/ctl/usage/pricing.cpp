// Usage pricing: reads and checks the pricing file, then prices per-tenant usage in exact integers.
#include "ctl/usage/pricing.hpp"
#include "common/diagnostics.hpp"

#include <toml++/toml.h>

#include <fnmatch.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <map>
#include <set>
#include <sstream>
#include <tuple>
#include <utility>

namespace plugmon::ctl::usage {

namespace {

using namespace std::chrono;
using agent::toml_type_name;

constexpr std::size_t max_pricing_bytes = 1u << 20;
/// Prices and fees above a billion currency units per unit are refused (keeps products in i128).
constexpr double max_price = 1e9;
/// Quantities (up_to, free_units, included_units) above 1e18 units are refused.
constexpr double max_units = 1e18;

std::string quote(std::string_view s) { return "\"" + std::string(s) + "\""; }

i128 pow10(int n) {
    i128 r = 1;
    while (n-- > 0) r *= 10;
    return r;
}

i128 checked_mul(i128 a, i128 b, const char* what) {
    i128 r = 0;
    if (__builtin_mul_overflow(a, b, &r))
        throw std::overflow_error(std::string(what) + ": amount too large");
    return r;
}

i128 checked_add(i128 a, i128 b, const char* what) {
    i128 r = 0;
    if (__builtin_add_overflow(a, b, &r))
        throw std::overflow_error(std::string(what) + ": amount too large");
    return r;
}

/// a / d rounded half to even; d > 0.
i128 div_half_even(i128 a, i128 d) {
    const bool neg = a < 0;
    const i128 m = neg ? -a : a;
    i128 q = m / d;
    const i128 r = m % d;
    if (2 * r > d || (2 * r == d && (q & 1) != 0)) ++q;
    return neg ? -q : q;
}

/// x × covered / whole, rounded half to even, without forming x × covered (which may not fit).
i128 scale(i128 x, std::int64_t covered, std::int64_t whole) {
    const i128 q = x / whole;
    const i128 r = x % whole;
    return q * covered + div_half_even(r * covered, whole);
}

/// `x` summed over the months of `shares`, each month's share prorated: Σ x × covered / month.
i128 prorate(i128 x, const std::vector<month_share>& shares) {
    i128 sum = 0;
    for (const auto& s : shares)
        sum = checked_add(sum, scale(x, s.covered_us, s.month_us), "prorating");
    return sum;
}

std::string to_string_i128(i128 v) {
    if (v == 0) return "0";
    const bool neg = v < 0;
    std::string out;
    // Work on negative values so that the most negative i128 is representable.
    i128 n = neg ? v : -v;
    while (n != 0) {
        out += static_cast<char>('0' - static_cast<int>(n % 10));
        n /= 10;
    }
    if (neg) out += '-';
    std::reverse(out.begin(), out.end());
    return out;
}

// ---- the pricing file --------------------------------------------------------------------------

std::size_t edit_distance(std::string_view a, std::string_view b) {
    std::vector<std::size_t> row(b.size() + 1);
    for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
    for (std::size_t i = 1; i <= a.size(); ++i) {
        std::size_t diag = row[0];
        row[0] = i;
        for (std::size_t j = 1; j <= b.size(); ++j) {
            const std::size_t up = row[j];
            row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
            diag = up;
        }
    }
    return row[b.size()];
}

std::string did_you_mean(std::string_view key, std::span<const std::string_view> known) {
    std::string_view best;
    std::size_t best_d = 3;  // suggest only close misspellings
    for (auto k : known) {
        const std::size_t d = edit_distance(key, k);
        if (d < best_d) best_d = d, best = k;
    }
    return best.empty() ? std::string{} : " (did you mean " + quote(best) + "?)";
}

constexpr std::array<std::string_view, 2> tier_keys = {"up_to", "unit_price"};
constexpr std::array<std::string_view, 2> match_keys = {"tenants", "plugins"};
constexpr std::array<std::string_view, 3> top_keys = {"currency", "decimals", "plan"};

/// Where we are in the file, for messages: "FILE:LINE:COL: plan "x": KEY: problem".
struct context {
    const std::string& source;
    std::string plan;    // "plan \"standard\"" or "plan[3]"; empty outside a plan
    std::string prefix;  // dotted key prefix for key(): "plan[3]."

    [[noreturn]] void fail(const toml::node* at, std::string_view key,
                           const std::string& problem) const {
        std::string msg = source;
        if (at != nullptr && at->source().begin.line != 0)
            msg += ":" + std::to_string(at->source().begin.line) + ":" +
                   std::to_string(at->source().begin.column);
        msg += ": ";
        if (!plan.empty()) msg += plan + ": ";
        if (!key.empty()) msg += std::string(key) + ": ";
        msg += problem;
        throw pricing_error(prefix + std::string(key.empty() ? "plan" : key), msg);
    }
};

std::string read_string(const context& ctx, const toml::node& n, std::string_view key) {
    const auto* s = n.as_string();
    if (s == nullptr) ctx.fail(&n, key, "expected a string, got " + toml_type_name(n));
    return s->get();
}

/// A non-negative decimal with at most nine decimal places, as nano-units. `limit` is in units.
i128 read_nano(const context& ctx, const toml::node& n, std::string_view key, double limit) {
    const auto too_big = [&] {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%g", limit);
        ctx.fail(&n, key, std::string("must be at most ") + buf);
    };
    if (const auto* i = n.as_integer()) {
        const std::int64_t v = i->get();
        if (v < 0) ctx.fail(&n, key, "must be at least 0, got " + std::to_string(v));
        if (static_cast<double>(v) > limit) too_big();
        return i128{v} * nano;
    }
    if (const auto* f = n.as_floating_point()) {
        const double v = f->get();
        if (!std::isfinite(v)) ctx.fail(&n, key, "must be a finite number");
        if (v < 0) ctx.fail(&n, key, "must be at least 0, got " + std::to_string(v));
        if (v > limit) too_big();
        // Split into whole and fractional parts so that large values keep their precision.
        const double whole = std::floor(v);
        const double frac = (v - whole) * 1e9;
        const double r = std::round(frac);
        // Beyond what a double holds at this magnitude, the nearest nano-unit is what was meant.
        if (std::fabs(frac - r) > std::max(1e-3, v * 1e9 * 1e-15))
            ctx.fail(&n, key,
                     "has more than 9 decimal places (prices and quantities are exact to 1e-9)");
        return static_cast<i128>(whole) * nano + static_cast<i128>(r);
    }
    ctx.fail(&n, key, "expected a number, got " + toml_type_name(n));
}

std::int64_t read_price(const context& ctx, const toml::node& n, std::string_view key) {
    return static_cast<std::int64_t>(read_nano(ctx, n, key, max_price));
}

std::vector<std::string> read_patterns(const context& ctx, const toml::node& n,
                                       std::string_view key) {
    std::vector<std::string> out;
    const auto one = [&](const toml::node& e) {
        std::string s = read_string(ctx, e, key);
        if (s.empty()) ctx.fail(&e, key, "an empty pattern matches nothing; use \"*\" for any");
        out.push_back(std::move(s));
    };
    if (const auto* arr = n.as_array()) {
        if (arr->empty()) ctx.fail(&n, key, "an empty list matches nothing; use [\"*\"] for any");
        for (const auto& e : *arr) one(e);
    } else if (n.is_string()) {
        one(n);
    } else {
        ctx.fail(&n, key, "expected a list of glob patterns, got " + toml_type_name(n));
    }
    return out;
}

model_kind read_model(const context& ctx, const toml::node& n) {
    const std::string s = read_string(ctx, n, "model");
    for (auto m : {model_kind::per_call, model_kind::per_cpu_second, model_kind::tiered,
                   model_kind::free_tier, model_kind::subscription})
        if (s == to_string(m)) return m;
    ctx.fail(&n, "model",
             "unknown model " + quote(s) +
                 "; expected per_call, per_cpu_second, tiered, free_tier or subscription");
}

metric_kind read_metric(const context& ctx, const toml::node& n) {
    const std::string s = read_string(ctx, n, "metric");
    for (auto m : {metric_kind::executions, metric_kind::queries, metric_kind::rows,
                   metric_kind::cpu_seconds, metric_kind::query_seconds})
        if (s == to_string(m)) return m;
    ctx.fail(&n, "metric",
             "unknown metric " + quote(s) +
                 "; expected executions, queries, rows, cpu_seconds or query_seconds");
}

/// Which model a plan key belongs to, for "not used by model X" messages; nullptr for common keys.
const char* owner_of(std::string_view key) {
    if (key == "tiers" || key == "mode") return "tiered";
    if (key == "free_units") return "free_tier";
    if (key == "monthly_fee" || key == "included_units" || key == "overage_unit_price")
        return "subscription";
    if (key == "unit_price") return "per_call, per_cpu_second or free_tier";
    return nullptr;
}

bool used_by(model_kind m, std::string_view key) {
    if (key == "name" || key == "match" || key == "model" || key == "metric") return true;
    switch (m) {
        case model_kind::per_call:
        case model_kind::per_cpu_second:
            return key == "unit_price";
        case model_kind::tiered:
            return key == "tiers" || key == "mode";
        case model_kind::free_tier:
            return key == "free_units" || key == "unit_price";
        case model_kind::subscription:
            return key == "monthly_fee" || key == "included_units" || key == "overage_unit_price";
    }
    return false;
}

std::vector<tier> read_tiers(const context& ctx, const toml::node& n) {
    const auto* arr = n.as_array();
    if (arr == nullptr)
        ctx.fail(&n, "tiers", "expected an array of tables, got " + toml_type_name(n));
    if (arr->empty()) ctx.fail(&n, "tiers", "needs at least one tier");
    std::vector<tier> out;
    for (std::size_t i = 0; i < arr->size(); ++i) {
        const toml::node& e = *arr->get(i);
        const std::string key = "tiers[" + std::to_string(i + 1) + "]";
        const auto* t = e.as_table();
        if (t == nullptr)
            ctx.fail(&e, key,
                     "expected a table { up_to = …, unit_price = … }, got " + toml_type_name(e));
        tier tr;
        bool priced = false;
        for (auto&& [k, v] : *t) {
            if (k.str() == "up_to") {
                tr.up_to_nano = read_nano(ctx, v, key + ".up_to", max_units);
                if (*tr.up_to_nano == 0) ctx.fail(&v, key + ".up_to", "must be greater than 0");
                if (!out.empty() && *tr.up_to_nano <= *out.back().up_to_nano)
                    ctx.fail(&v, key + ".up_to",
                             "must be greater than the previous tier's up_to (" +
                                 format_nano(*out.back().up_to_nano) + ")");
            } else if (k.str() == "unit_price") {
                tr.unit_price_nano = read_price(ctx, v, key + ".unit_price");
                priced = true;
            } else {
                ctx.fail(&v, key + "." + std::string(k.str()),
                         "unknown key" + did_you_mean(k.str(), tier_keys) +
                             "; a tier has up_to and unit_price");
            }
        }
        if (!priced) ctx.fail(&e, key + ".unit_price", "missing");
        const bool last = i + 1 == arr->size();
        if (!last && !tr.up_to_nano)
            ctx.fail(&e, key + ".up_to", "missing; only the last tier may be unbounded");
        if (last && tr.up_to_nano)
            ctx.fail(
                &e, key + ".up_to",
                "the last tier must have no up_to (it prices everything beyond the previous tier)");
        out.push_back(tr);
    }
    return out;
}

/// A plan's `match = { tenants = [...], plugins = [...] }` into p.tenants and p.plugins.
void read_match(context& ctx, const toml::node& m, plan& p) {
    const auto* mt = m.as_table();
    if (mt == nullptr)
        ctx.fail(&m, "match",
                 "expected a table { tenants = [...], plugins = [...] }, got " + toml_type_name(m));
    for (auto&& [k, v] : *mt) {
        if (k.str() == "tenants")
            p.tenants = read_patterns(ctx, v, "match.tenants");
        else if (k.str() == "plugins")
            p.plugins = read_patterns(ctx, v, "match.plugins");
        else
            ctx.fail(&v, "match." + std::string(k.str()),
                     "unknown key" + did_you_mean(k.str(), match_keys) +
                         "; match has tenants and plugins");
    }
}

plan read_plan(const std::string& source, const toml::table& t, std::size_t index,
               const std::vector<plan>& earlier) {
    context ctx{source, "plan[" + std::to_string(index) + "]",
                "plan[" + std::to_string(index) + "]."};
    static constexpr std::array<std::string_view, 11> known = {
        "name", "match",      "model",       "metric",         "unit_price",        "tiers",
        "mode", "free_units", "monthly_fee", "included_units", "overage_unit_price"};
    plan p;
    const toml::node* name = t.get("name");
    if (name == nullptr)
        ctx.fail(&t, "name", "missing (every plan needs a name; it is shown on invoice lines)");
    p.name = read_string(ctx, *name, "name");
    if (p.name.empty()) ctx.fail(name, "name", "must not be empty");
    for (const auto& e : earlier)
        if (e.name == p.name)
            ctx.fail(name, "name", "another plan is already named " + quote(p.name));
    ctx.plan = "plan " + quote(p.name);

    const toml::node* model = t.get("model");
    if (model == nullptr)
        ctx.fail(&t, "model",
                 "missing; expected per_call, per_cpu_second, tiered, free_tier or subscription");
    p.model = read_model(ctx, *model);

    for (auto&& [k, v] : t) {
        const std::string_view key = k.str();
        if (std::find(known.begin(), known.end(), key) == known.end())
            ctx.fail(&v, key, "unknown key" + did_you_mean(key, known));
        if (!used_by(p.model, key))
            ctx.fail(&v, key,
                     std::string("not used by model ") + quote(to_string(p.model)) +
                         " (it belongs to " + owner_of(key) + ")");
    }

    if (const toml::node* m = t.get("match")) read_match(ctx, *m, p);

    const toml::node* metric = t.get("metric");
    if (metric != nullptr) p.metric = read_metric(ctx, *metric);
    if (p.model == model_kind::per_cpu_second) {
        if (metric != nullptr && p.metric != metric_kind::cpu_seconds)
            ctx.fail(metric, "metric",
                     "model per_cpu_second always counts cpu_seconds; remove metric or set it so");
        p.metric = metric_kind::cpu_seconds;
    }
    if (p.model == model_kind::per_call &&
        (p.metric == metric_kind::cpu_seconds || p.metric == metric_kind::query_seconds))
        ctx.fail(metric, "metric",
                 std::string("model per_call counts calls (executions, queries or rows), not ") +
                     to_string(p.metric) + "; use per_cpu_second or another model");

    const auto need = [&](std::string_view key) -> const toml::node& {
        const toml::node* n = t.get(key);
        if (n == nullptr)
            ctx.fail(&t, key,
                     std::string("missing (required by model ") + to_string(p.model) + ")");
        return *n;
    };
    switch (p.model) {
        case model_kind::per_call:
        case model_kind::per_cpu_second:
            p.unit_price_nano = read_price(ctx, need("unit_price"), "unit_price");
            break;
        case model_kind::tiered:
            p.tiers = read_tiers(ctx, need("tiers"));
            if (const toml::node* mode = t.get("mode")) {
                const std::string s = read_string(ctx, *mode, "mode");
                if (s == "graduated")
                    p.mode = tier_mode::graduated;
                else if (s == "volume")
                    p.mode = tier_mode::volume;
                else
                    ctx.fail(mode, "mode",
                             "unknown mode " + quote(s) + "; expected graduated or volume");
            }
            break;
        case model_kind::free_tier:
            p.free_units_nano = read_nano(ctx, need("free_units"), "free_units", max_units);
            p.unit_price_nano = read_price(ctx, need("unit_price"), "unit_price");
            break;
        case model_kind::subscription:
            p.monthly_fee_nano = read_price(ctx, need("monthly_fee"), "monthly_fee");
            p.included_units_nano =
                read_nano(ctx, need("included_units"), "included_units", max_units);
            p.overage_unit_price_nano =
                read_price(ctx, need("overage_unit_price"), "overage_unit_price");
            break;
    }
    return p;
}

bool glob_any(const std::vector<std::string>& patterns, std::string_view text) {
    const std::string s(text);
    return std::any_of(patterns.begin(), patterns.end(), [&](const std::string& p) {
        return ::fnmatch(p.c_str(), s.c_str(), 0) == 0;
    });
}

// ---- timestamps -------------------------------------------------------------------------------

bool digits(std::string_view s, std::size_t pos, std::size_t n, int& out) {
    if (pos + n > s.size()) return false;
    int v = 0;
    for (std::size_t i = pos; i < pos + n; ++i) {
        if (s[i] < '0' || s[i] > '9') return false;
        v = v * 10 + (s[i] - '0');
    }
    out = v;
    return true;
}

}  // namespace

// ---- public ---------------------------------------------------------------------------------------

const char* to_string(metric_kind m) noexcept {
    switch (m) {
        case metric_kind::executions:
            return "executions";
        case metric_kind::queries:
            return "queries";
        case metric_kind::rows:
            return "rows";
        case metric_kind::cpu_seconds:
            return "cpu_seconds";
        case metric_kind::query_seconds:
            return "query_seconds";
    }
    return "?";
}

const char* to_string(model_kind m) noexcept {
    switch (m) {
        case model_kind::per_call:
            return "per_call";
        case model_kind::per_cpu_second:
            return "per_cpu_second";
        case model_kind::tiered:
            return "tiered";
        case model_kind::free_tier:
            return "free_tier";
        case model_kind::subscription:
            return "subscription";
    }
    return "?";
}

const char* to_string(tier_mode m) noexcept {
    return m == tier_mode::volume ? "volume" : "graduated";
}

i128 quantity_of(const usage_row& row, metric_kind m) noexcept {
    switch (m) {
        case metric_kind::executions:
            return i128{row.executions} * nano;
        case metric_kind::queries:
            return i128{row.queries} * nano;
        case metric_kind::rows:
            return i128{row.rows} * nano;
        case metric_kind::cpu_seconds:
            return row.cpu_ns;
        case metric_kind::query_seconds:
            return row.query_ns;
    }
    return 0;
}

bool plan::matches(std::string_view tenant, std::string_view plugin) const {
    return glob_any(tenants, tenant) && glob_any(plugins, plugin);
}

const plan* pricing::match(std::string_view tenant, std::string_view plugin) const {
    for (const auto& p : plans)
        if (p.matches(tenant, plugin)) return &p;
    return nullptr;
}

pricing_error::pricing_error(std::string key, const std::string& message)
    : std::runtime_error(message), key_(std::move(key)) {}

pricing parse_pricing(std::string_view text, const std::string& source) {
    toml::table root;
    try {
        root = toml::parse(text, source);
    } catch (const toml::parse_error& e) {
        throw pricing_error("file", source + ":" + std::to_string(e.source().begin.line) + ":" +
                                        std::to_string(e.source().begin.column) +
                                        ": TOML syntax error: " + std::string(e.description()));
    }
    const context ctx{source, {}, {}};
    pricing out;
    out.source = source;
    for (auto&& [k, v] : root) {
        const std::string_view key = k.str();
        if (key == "currency") {
            out.currency = read_string(ctx, v, "currency");
            if (out.currency.empty()) ctx.fail(&v, "currency", "must not be empty");
        } else if (key == "decimals") {
            const auto* i = v.as_integer();
            if (i == nullptr)
                ctx.fail(&v, "decimals", "expected an integer, got " + toml_type_name(v));
            if (i->get() < 0 || i->get() > 6)
                ctx.fail(&v, "decimals",
                         "must be between 0 and 6, got " + std::to_string(i->get()));
            out.decimals = static_cast<int>(i->get());
        } else if (key != "plan") {
            ctx.fail(&v, key,
                     "unknown key" + did_you_mean(key, top_keys) +
                         "; the top level has currency, decimals and [[plan]] tables");
        }
    }
    const toml::node* plans = root.get("plan");
    if (plans == nullptr) ctx.fail(nullptr, "plan", "no [[plan]] tables: nothing could be priced");
    const auto* arr = plans->as_array();
    if (arr == nullptr || !arr->is_array_of_tables())
        ctx.fail(plans, "plan", "expected [[plan]] tables, got " + toml_type_name(*plans));
    if (arr->empty()) ctx.fail(plans, "plan", "no [[plan]] tables: nothing could be priced");
    for (std::size_t i = 0; i < arr->size(); ++i)
        out.plans.push_back(read_plan(source, *arr->get(i)->as_table(), i + 1, out.plans));
    return out;
}

pricing load_pricing(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw pricing_error("file", path + ": cannot open: " + std::strerror(errno));
    std::string text;
    char buf[8192];
    while (in.read(buf, sizeof buf) || in.gcount() > 0) {
        text.append(buf, static_cast<std::size_t>(in.gcount()));
        if (text.size() > max_pricing_bytes)
            throw pricing_error("file", path + ": larger than 1 MiB");
    }
    if (in.bad()) throw pricing_error("file", path + ": read error");
    return parse_pricing(text, path);
}

std::optional<timestamp> parse_timestamp(std::string_view s) {
    int y = 0, mo = 0, d = 0;
    if (s.size() < 10 || !digits(s, 0, 4, y) || s[4] != '-' || !digits(s, 5, 2, mo) ||
        s[7] != '-' || !digits(s, 8, 2, d))
        return std::nullopt;
    const year_month_day ymd{year{y}, month{static_cast<unsigned>(mo)},
                             day{static_cast<unsigned>(d)}};
    if (!ymd.ok()) return std::nullopt;
    timestamp t = time_point_cast<microseconds>(sys_days{ymd});
    if (s.size() == 10) return t;
    if (s[10] != 'T' && s[10] != 't' && s[10] != ' ') return std::nullopt;
    int hh = 0, mm = 0, ss = 0;
    if (!digits(s, 11, 2, hh) || s.size() < 19 || s[13] != ':' || !digits(s, 14, 2, mm) ||
        s[16] != ':' || !digits(s, 17, 2, ss) || hh > 23 || mm > 59 || ss > 59)
        return std::nullopt;
    t += hours{hh} + minutes{mm} + seconds{ss};
    std::size_t pos = 19;
    if (pos < s.size() && s[pos] == '.') {
        ++pos;
        std::int64_t us = 0;
        int n = 0;
        while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
            if (n == 6) return std::nullopt;  // finer than PostgreSQL keeps
            us = us * 10 + (s[pos] - '0');
            ++n, ++pos;
        }
        if (n == 0) return std::nullopt;
        for (; n < 6; ++n) us *= 10;
        t += microseconds{us};
    }
    if (pos == s.size()) return std::nullopt;  // RFC 3339 requires the offset
    if ((s[pos] == 'Z' || s[pos] == 'z') && pos + 1 == s.size()) return t;
    if (s[pos] != '+' && s[pos] != '-') return std::nullopt;
    int oh = 0, om = 0;
    if (s.size() != pos + 6 || !digits(s, pos + 1, 2, oh) || s[pos + 3] != ':' ||
        !digits(s, pos + 4, 2, om) || oh > 23 || om > 59)
        return std::nullopt;
    const minutes offset = hours{oh} + minutes{om};
    return s[pos] == '+' ? t - offset : t + offset;
}

std::string format_timestamp(timestamp t) {
    const auto day = floor<days>(t);
    const year_month_day ymd{day};
    const hh_mm_ss<microseconds> tod{t - day};
    char buf[48];
    std::snprintf(buf, sizeof buf, "%04d-%02u-%02uT%02d:%02d:%02d", static_cast<int>(ymd.year()),
                  static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
                  static_cast<int>(tod.hours().count()), static_cast<int>(tod.minutes().count()),
                  static_cast<int>(tod.seconds().count()));
    std::string out = buf;
    if (tod.subseconds().count() != 0) {
        std::snprintf(buf, sizeof buf, ".%06lld", static_cast<long long>(tod.subseconds().count()));
        out += buf;
    }
    return out + "Z";
}

std::vector<month_share> month_shares(const period& p) {
    std::vector<month_share> out;
    if (p.from >= p.to) return out;
    const year_month_day first{floor<days>(p.from)};
    year_month m = first.year() / first.month();
    while (true) {
        const timestamp start = sys_days{m / 1};
        if (start >= p.to) break;
        const timestamp end = sys_days{(m + months{1}) / 1};
        const timestamp lo = std::max(start, p.from);
        const timestamp hi = std::min(end, p.to);
        out.push_back({m, (hi - lo).count(), (end - start).count()});
        m += months{1};
    }
    return out;
}

double months_covered(const period& p) {
    double sum = 0;
    for (const auto& s : month_shares(p))
        sum += static_cast<double>(s.covered_us) / static_cast<double>(s.month_us);
    return sum;
}

std::int64_t round_half_even(i128 amount_atto, int decimals) noexcept {
    return static_cast<std::int64_t>(div_half_even(amount_atto, pow10(18 - decimals)));
}

std::string format_minor(std::int64_t minor, int decimals) {
    const bool neg = minor < 0;
    const i128 m = neg ? -i128{minor} : i128{minor};
    const i128 unit = pow10(decimals);
    std::string out = (neg ? "-" : "") + to_string_i128(m / unit);
    if (decimals > 0) {
        std::string frac = to_string_i128(m % unit);
        out += "." + std::string(static_cast<std::size_t>(decimals) - frac.size(), '0') + frac;
    }
    return out;
}

std::string format_decimal(i128 value, int scale) {
    const bool neg = value < 0;
    const i128 m = neg ? -value : value;
    const i128 unit = pow10(scale);
    std::string out = (neg ? "-" : "") + to_string_i128(m / unit);
    if (const i128 f = m % unit; f != 0) {
        std::string frac = to_string_i128(f);
        frac = std::string(static_cast<std::size_t>(scale) - frac.size(), '0') + frac;
        while (frac.back() == '0') frac.pop_back();
        out += "." + frac;
    }
    return out;
}

std::string format_nano(i128 value_nano) { return format_decimal(value_nano, 9); }

double to_double_nano(i128 value_nano) noexcept {
    return static_cast<double>(value_nano / nano) + static_cast<double>(value_nano % nano) / 1e9;
}

std::int64_t invoice::tenant_total_minor(std::string_view tenant) const noexcept {
    std::int64_t sum = 0;
    for (const auto& l : lines)
        if (l.tenant == tenant) sum += l.amount_minor;
    return sum;
}

std::int64_t invoice::total_minor() const noexcept {
    std::int64_t sum = 0;
    for (const auto& l : lines) sum += l.amount_minor;
    return sum;
}

invoice price(const pricing& p, std::span<const usage_row> rows, const period& when) {
    invoice inv;
    inv.currency = p.currency;
    inv.decimals = p.decimals;
    inv.when = when;

    struct acc {
        std::set<std::string> plugins;
        i128 quantity = 0;
    };
    // Keyed by (tenant, plan index): the lines come out by tenant, then in file order.
    std::map<std::pair<std::string, std::size_t>, acc> groups;
    for (const auto& row : rows) {
        const plan* pl = p.match(row.tenant, row.plugin);
        if (pl == nullptr) {
            inv.unmatched.push_back(row);
            continue;
        }
        auto& a = groups[{row.tenant, static_cast<std::size_t>(pl - p.plans.data())}];
        a.plugins.insert(row.plugin);
        a.quantity = checked_add(a.quantity, quantity_of(row, pl->metric), "usage");
    }
    std::sort(inv.unmatched.begin(), inv.unmatched.end(),
              [](const usage_row& a, const usage_row& b) {
                  return std::tie(a.tenant, a.plugin) < std::tie(b.tenant, b.plugin);
              });

    const auto shares = month_shares(when);
    // 1e15 minor units (ten trillion in a 2-decimal currency) per line keeps every total in int64.
    const i128 max_amount = i128{1'000'000'000'000'000} * pow10(18 - p.decimals);
    for (const auto& [key, a] : groups) {
        const plan& pl = p.plans[key.second];
        invoice_line line;
        line.tenant = key.first;
        line.plan = pl.name;
        line.model = pl.model;
        line.metric = pl.metric;
        line.plugins.assign(a.plugins.begin(), a.plugins.end());
        line.quantity_nano = a.quantity;
        line.billable_nano = a.quantity;
        // quantity (nano-units) × price (nano-currency) = atto-currency, exactly.
        const auto priced = [&](std::string label, i128 qty, std::int64_t unit_price) {
            line.components.push_back(
                {std::move(label), qty, unit_price, checked_mul(qty, unit_price, "usage")});
        };
        const auto with_allowance = [&](i128 allowance, std::int64_t overage_price) {
            line.allowance_nano = allowance;
            const i128 inside = std::min(a.quantity, allowance);
            line.billable_nano = a.quantity - inside;
            priced("allowance", inside, 0);
            priced("overage", line.billable_nano, overage_price);
        };
        switch (pl.model) {
            case model_kind::per_call:
            case model_kind::per_cpu_second:
                priced("usage", a.quantity, pl.unit_price_nano);
                break;
            case model_kind::tiered:
                if (pl.mode == tier_mode::volume) {
                    // Every unit at the price of the tier the total falls in (up_to is inclusive).
                    std::size_t i = 0;
                    while (pl.tiers[i].up_to_nano && a.quantity > *pl.tiers[i].up_to_nano) ++i;
                    priced("tier " + std::to_string(i + 1), a.quantity,
                           pl.tiers[i].unit_price_nano);
                } else {
                    // Each unit in its own tier: tier i holds the units in (up_to[i-1], up_to[i]].
                    i128 below = 0;
                    for (std::size_t i = 0; i < pl.tiers.size() && a.quantity > below; ++i) {
                        const auto& t = pl.tiers[i];
                        const i128 top =
                            t.up_to_nano ? std::min(a.quantity, *t.up_to_nano) : a.quantity;
                        priced("tier " + std::to_string(i + 1), top - below, t.unit_price_nano);
                        below = top;
                    }
                }
                break;
            case model_kind::free_tier:
                with_allowance(prorate(pl.free_units_nano, shares), pl.unit_price_nano);
                break;
            case model_kind::subscription: {
                // The fee is prorated month by month in atto-currency; "quantity" is the months covered.
                const i128 fee = prorate(i128{pl.monthly_fee_nano} * nano, shares);
                line.components.push_back(
                    {"monthly fee", prorate(nano, shares), pl.monthly_fee_nano, fee});
                with_allowance(prorate(pl.included_units_nano, shares), pl.overage_unit_price_nano);
                break;
            }
        }
        for (const auto& c : line.components)
            line.amount_atto = checked_add(line.amount_atto, c.amount_atto, "line");
        if (line.amount_atto > max_amount)
            throw std::overflow_error("plan " + quote(pl.name) + ": amount too large");
        line.amount_minor = round_half_even(line.amount_atto, p.decimals);
        inv.lines.push_back(std::move(line));
    }
    return inv;
}

}  // namespace plugmon::ctl::usage
