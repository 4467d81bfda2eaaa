// plugmonctl: talks to a running agent over its HTTP API (status, top), bills usage from PostgreSQL
// (usage), and backs up and restores the store (backup, restore: ctl/backup).
#include "common/version.hpp"
#include "ctl/backup/commands.hpp"
#include "ctl/top/top.hpp"
#include "ctl/usage/pricing.hpp"
#include "store/read/usage.hpp"

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

namespace beast = boost::beast;
namespace asio = boost::asio;
namespace usage = plugmon::ctl::usage;

namespace {

/// GET http://<agent>/<target>; throws std::runtime_error naming the agent on failure.
std::string http_get(const std::string& agent, const std::string& target) {
    const auto colon = agent.rfind(':');
    if (colon == std::string::npos)
        throw std::runtime_error("--agent: expected host:port, got \"" + agent + "\"");
    std::string host = agent.substr(0, colon);
    if (host.size() > 1 && host.front() == '[') host = host.substr(1, host.size() - 2);
    const std::string port = agent.substr(colon + 1);
    asio::io_context io;
    asio::ip::tcp::resolver resolver(io);
    beast::tcp_stream stream(io);
    stream.expires_after(std::chrono::seconds(5));
    stream.connect(resolver.resolve(host, port));
    beast::http::request<beast::http::empty_body> req{beast::http::verb::get, target, 11};
    req.set(beast::http::field::host, host);
    beast::http::write(stream, req);
    beast::flat_buffer buf;
    beast::http::response<beast::http::string_body> res;
    beast::http::read(stream, buf, res);
    beast::error_code ec;
    stream.socket().shutdown(asio::ip::tcp::socket::shutdown_both, ec);
    if (res.result_int() >= 400 && res.result_int() != 503)
        throw std::runtime_error(target + ": HTTP " + std::to_string(res.result_int()));
    return res.body();
}

int status(const std::string& agent) {
    const auto ready = nlohmann::json::parse(http_get(agent, "/readyz"));
    const auto prods = nlohmann::json::parse(http_get(agent, "/api/v1/producers"));
    const auto& t = prods["totals"];
    std::printf("agent %s  version %s  %s\n", agent.c_str(), ready.value("version", "?").c_str(),
                ready.value("ready", false) ? "ready" : "NOT READY");
    std::printf("socket %s  store %s\n", ready.value("socket", "").c_str(),
                ready.value("store", "").c_str());
    std::printf(
        "drained %llu  dropped: full %llu  torn %llu  invalid %llu  (folded over budget %llu)\n",
        t["drained"].get<unsigned long long>(), t["dropped"]["full"].get<unsigned long long>(),
        t["dropped"]["torn"].get<unsigned long long>(),
        t["dropped"]["invalid"].get<unsigned long long>(), t.value("folded", 0ull));
    std::printf("%8s %8s %-12s %14s %12s %8s %8s\n", "PID", "UID", "STATE", "DRAINED", "FULL",
                "TORN", "INVALID");
    for (const auto& p : prods["producers"])
        std::printf("%8d %8u %-12s %14llu %12llu %8llu %8llu\n", p["pid"].get<int>(),
                    p["uid"].get<unsigned>(), p["state"].get<std::string>().c_str(),
                    p["drained"].get<unsigned long long>(),
                    p["dropped_full"].get<unsigned long long>(),
                    p["torn"].get<unsigned long long>(), p["invalid"].get<unsigned long long>());
    return ready.value("ready", false) ? 0 : 1;
}

// ---- usage -------------------------------------------------------------------------------------

/// What `plugmonctl usage` was asked for.
struct usage_options {
    std::string postgres;
    std::string from, to;
    std::string pricing;
    std::string tenant;
    std::string format = "table";
    bool strict = false;
};

/// Bad input: the message is printed and plugmonctl exits with status 2.
struct usage_input_error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

/// A column-aligned text table: text left-aligned, numbers right-aligned, two spaces apart.
class text_table {
public:
    explicit text_table(std::vector<std::string> titles, std::vector<bool> right)
        : right_(std::move(right)) {
        rows_.push_back(std::move(titles));
    }
    void add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
    void print(std::ostream& out) const {
        std::vector<std::size_t> width(right_.size(), 0);
        for (const auto& r : rows_)
            for (std::size_t i = 0; i < r.size(); ++i) width[i] = std::max(width[i], r[i].size());
        for (const auto& r : rows_) {
            std::string line;
            for (std::size_t i = 0; i < right_.size(); ++i) {
                const std::string& cell = i < r.size() ? r[i] : std::string{};
                const std::string pad(width[i] - cell.size(), ' ');
                if (i > 0) line += "  ";
                line += right_[i] ? pad + cell : cell + pad;
            }
            while (!line.empty() && line.back() == ' ') line.pop_back();
            out << line << '\n';
        }
    }

private:
    std::vector<bool> right_;
    std::vector<std::vector<std::string>> rows_;
};

std::string csv_field(const std::string& s) {
    if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
    std::string q = "\"";
    for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
    return q + "\"";
}

void csv_line(std::ostream& out, const std::vector<std::string>& fields) {
    for (std::size_t i = 0; i < fields.size(); ++i) out << (i ? "," : "") << csv_field(fields[i]);
    out << '\n';
}

std::string shown_tenant(const std::string& t) { return t.empty() ? "-" : t; }

/// Seconds from nanoseconds: exact ("12.5") for csv, three decimals for the table.
std::string seconds_text(std::uint64_t ns, bool exact) {
    if (exact) return usage::format_nano(ns);
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.3f", static_cast<double>(ns) / 1e9);
    return buf;
}

std::string join(const std::vector<std::string>& v, const char* sep) {
    std::string out;
    for (std::size_t i = 0; i < v.size(); ++i) out += (i ? sep : "") + v[i];
    return out;
}

nlohmann::json usage_json(const usage::usage_row& r) {
    return {{"tenant", r.tenant},         {"plugin", r.plugin},
            {"queries", r.queries},       {"query_errors", r.query_errors},
            {"query_ns", r.query_ns},     {"rows", r.rows},
            {"executions", r.executions}, {"execution_errors", r.execution_errors},
            {"cpu_ns", r.cpu_ns},         {"wall_ns", r.wall_ns}};
}

void print_usage_table(std::ostream& out, const std::vector<usage::usage_row>& rows) {
    text_table t({"TENANT", "PLUGIN", "QUERIES", "Q_ERRORS", "QUERY_S", "ROWS", "EXECUTIONS",
                  "E_ERRORS", "CPU_S", "WALL_S"},
                 {false, false, true, true, true, true, true, true, true, true});
    for (const auto& r : rows)
        t.add({shown_tenant(r.tenant), r.plugin, std::to_string(r.queries),
               std::to_string(r.query_errors), seconds_text(r.query_ns, false),
               std::to_string(r.rows), std::to_string(r.executions),
               std::to_string(r.execution_errors), seconds_text(r.cpu_ns, false),
               seconds_text(r.wall_ns, false)});
    t.print(out);
}

/// Usage without prices.
void print_usage(std::ostream& out, const usage_options& o, const usage::period& when,
                 const std::vector<usage::usage_row>& rows) {
    if (o.format == "json") {
        nlohmann::json j = {{"from", usage::format_timestamp(when.from)},
                            {"to", usage::format_timestamp(when.to)},
                            {"rows", nlohmann::json::array()}};
        for (const auto& r : rows) j["rows"].push_back(usage_json(r));
        out << j.dump(2) << '\n';
    } else if (o.format == "csv") {
        csv_line(out, {"tenant", "plugin", "queries", "query_errors", "query_seconds", "rows",
                       "executions", "execution_errors", "cpu_seconds", "wall_seconds"});
        for (const auto& r : rows)
            csv_line(out,
                     {r.tenant, r.plugin, std::to_string(r.queries), std::to_string(r.query_errors),
                      seconds_text(r.query_ns, true), std::to_string(r.rows),
                      std::to_string(r.executions), std::to_string(r.execution_errors),
                      seconds_text(r.cpu_ns, true), seconds_text(r.wall_ns, true)});
    } else {
        out << "usage " << usage::format_timestamp(when.from) << " .. "
            << usage::format_timestamp(when.to) << '\n';
        print_usage_table(out, rows);
    }
}

/// A quantity for the table: counts whole, seconds with three decimals.
std::string quantity_text(usage::i128 nano, usage::metric_kind m) {
    if (m == usage::metric_kind::cpu_seconds || m == usage::metric_kind::query_seconds) {
        char buf[64];
        std::snprintf(buf, sizeof buf, "%.3f", usage::to_double_nano(nano));
        return buf;
    }
    return usage::format_nano(nano);
}

/// The priced bill.
void print_invoice(std::ostream& out, const usage_options& o, const usage::invoice& inv) {
    const auto money = [&](std::int64_t minor) { return usage::format_minor(minor, inv.decimals); };
    std::vector<std::string> tenants;
    for (const auto& l : inv.lines)
        if (tenants.empty() || tenants.back() != l.tenant) tenants.push_back(l.tenant);
    if (o.format == "json") {
        nlohmann::json lines = nlohmann::json::array();
        for (const auto& l : inv.lines) {
            nlohmann::json parts = nlohmann::json::array();
            for (const auto& c : l.components)
                parts.push_back({{"label", c.label},
                                 {"quantity", usage::format_nano(c.quantity_nano)},
                                 {"unit_price", usage::format_nano(c.unit_price_nano)},
                                 {"amount_exact", usage::format_decimal(c.amount_atto, 18)}});
            lines.push_back({{"tenant", l.tenant},
                             {"plan", l.plan},
                             {"model", usage::to_string(l.model)},
                             {"metric", usage::to_string(l.metric)},
                             {"plugins", l.plugins},
                             {"quantity", usage::format_nano(l.quantity_nano)},
                             {"allowance", usage::format_nano(l.allowance_nano)},
                             {"billable", usage::format_nano(l.billable_nano)},
                             {"amount", money(l.amount_minor)},
                             {"amount_minor", l.amount_minor},
                             {"amount_exact", usage::format_decimal(l.amount_atto, 18)},
                             {"components", parts}});
        }
        nlohmann::json per_tenant = nlohmann::json::array();
        for (const auto& t : tenants)
            per_tenant.push_back({{"tenant", t},
                                  {"amount", money(inv.tenant_total_minor(t))},
                                  {"amount_minor", inv.tenant_total_minor(t)}});
        nlohmann::json unmatched = nlohmann::json::array();
        for (const auto& r : inv.unmatched) unmatched.push_back(usage_json(r));
        const nlohmann::json j = {{"from", usage::format_timestamp(inv.when.from)},
                                  {"to", usage::format_timestamp(inv.when.to)},
                                  {"months", usage::months_covered(inv.when)},
                                  {"pricing", o.pricing},
                                  {"currency", inv.currency},
                                  {"decimals", inv.decimals},
                                  {"lines", lines},
                                  {"tenants", per_tenant},
                                  {"total", money(inv.total_minor())},
                                  {"total_minor", inv.total_minor()},
                                  {"unmatched", unmatched}};
        out << j.dump(2) << '\n';
        return;
    }
    if (o.format == "csv") {
        csv_line(out, {"kind", "tenant", "plan", "model", "metric", "plugins", "quantity",
                       "allowance", "billable", "amount", "currency"});
        for (const auto& t : tenants) {
            for (const auto& l : inv.lines)
                if (l.tenant == t)
                    csv_line(
                        out,
                        {"line", l.tenant, l.plan, usage::to_string(l.model),
                         usage::to_string(l.metric), join(l.plugins, ";"),
                         usage::format_nano(l.quantity_nano), usage::format_nano(l.allowance_nano),
                         usage::format_nano(l.billable_nano), money(l.amount_minor), inv.currency});
            csv_line(out, {"subtotal", t, "", "", "", "", "", "", "",
                           money(inv.tenant_total_minor(t)), inv.currency});
        }
        csv_line(out,
                 {"total", "", "", "", "", "", "", "", "", money(inv.total_minor()), inv.currency});
        for (const auto& r : inv.unmatched)
            csv_line(out, {"unmatched", r.tenant, "", "", "", r.plugin, "", "", "", "", ""});
        return;
    }
    char months[32];
    std::snprintf(months, sizeof months, "%.4g", usage::months_covered(inv.when));
    out << "usage " << usage::format_timestamp(inv.when.from) << " .. "
        << usage::format_timestamp(inv.when.to) << "  (" << months << " month"
        << (usage::months_covered(inv.when) == 1.0 ? "" : "s") << ")  pricing " << o.pricing
        << '\n';
    text_table t({"TENANT", "PLAN", "MODEL", "METRIC", "PLUGINS", "QUANTITY", "ALLOWANCE",
                  "BILLABLE", "AMOUNT " + inv.currency},
                 {false, false, false, false, false, true, true, true, true});
    for (const auto& tenant : tenants) {
        for (const auto& l : inv.lines)
            if (l.tenant == tenant)
                t.add({shown_tenant(l.tenant), l.plan, usage::to_string(l.model),
                       usage::to_string(l.metric), join(l.plugins, ","),
                       quantity_text(l.quantity_nano, l.metric),
                       quantity_text(l.allowance_nano, l.metric),
                       quantity_text(l.billable_nano, l.metric), money(l.amount_minor)});
        t.add({shown_tenant(tenant), "subtotal", "", "", "", "", "", "",
               money(inv.tenant_total_minor(tenant))});
    }
    t.add({"TOTAL", "", "", "", "", "", "", "", money(inv.total_minor())});
    t.print(out);
    if (!inv.unmatched.empty()) {
        out << "\nunmatched: no plan in " << o.pricing << " matches this usage; it is not billed\n";
        print_usage_table(out, inv.unmatched);
    }
}

usage::timestamp parse_bound(const char* flag, const std::string& text) {
    const auto t = usage::parse_timestamp(text);
    if (!t)
        throw usage_input_error(std::string(flag) +
                                ": expected YYYY-MM-DD or RFC 3339 (2026-11-01T00:00:00Z), got \"" +
                                text + "\"");
    return *t;
}

int run_usage(usage_options o) {
    usage::period when;
    std::optional<usage::pricing> prices;
    try {
        when = {parse_bound("--from", o.from), parse_bound("--to", o.to)};
        if (!(when.from < when.to))
            throw usage_input_error("--from (" + usage::format_timestamp(when.from) +
                                    ") must be before --to (" + usage::format_timestamp(when.to) +
                                    ")");
        if (o.postgres.empty())
            if (const char* env = std::getenv("PLUGMON_POSTGRES")) o.postgres = env;
        if (o.postgres.empty())
            throw usage_input_error(
                "--postgres: no connection string (give --postgres URL or set PLUGMON_POSTGRES)");
        if (!o.pricing.empty()) prices = usage::load_pricing(o.pricing);
    } catch (const usage_input_error& e) {
        std::fprintf(stderr, "plugmonctl: usage: %s\n", e.what());
        return 2;
    } catch (const usage::pricing_error& e) {
        std::fprintf(stderr, "plugmonctl: usage: %s\n", e.what());
        return 2;
    }
    std::vector<usage::usage_row> rows;
    try {
        rows = plugmon::agent::store::read_usage(o.postgres, usage::format_timestamp(when.from),
                                                 usage::format_timestamp(when.to), o.tenant);
    } catch (const plugmon::agent::store::read_error& e) {
        std::fprintf(stderr, "plugmonctl: usage: %s\n", e.what());
        return 1;
    }
    if (!prices) {
        print_usage(std::cout, o, when, rows);
        return 0;
    }
    const usage::invoice inv = usage::price(*prices, rows, when);
    print_invoice(std::cout, o, inv);
    std::cout.flush();
    if (!inv.unmatched.empty()) {
        std::fprintf(stderr,
                     "plugmonctl: usage: %zu (tenant, plugin) pair%s match%s no plan in %s and %s "
                     "not billed\n",
                     inv.unmatched.size(), inv.unmatched.size() == 1 ? "" : "s",
                     inv.unmatched.size() == 1 ? "es" : "", o.pricing.c_str(),
                     inv.unmatched.size() == 1 ? "is" : "are");
        if (o.strict) return 3;
    }
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{
        "plugmonctl: inspect a running plugmon agent, and bill plugin usage from its database"};
    app.set_version_flag("--version", plugmon::agent::project_version);
    std::string agent = "127.0.0.1:9464";
    app.add_option("--agent", agent, "The agent's HTTP listener (host:port)")
        ->capture_default_str();
    auto* st = app.add_subcommand("status", "Health, producers and drop counters");
    auto* top = app.add_subcommand(
        "top", "Live per-plugin view: calls/s, errors, p99, query time, CPU, live memory");
    double interval = 1.0;
    int iterations = 1;
    top->add_option("--interval", interval, "Seconds between refreshes")->capture_default_str();
    auto* iterations_opt = top->add_option(
        "--iterations", iterations,
        "Print this many frames as plain text, then exit (default when stdout is not a tty: 1)");
    auto* us = app.add_subcommand(
        "usage", "Plugin usage per tenant over a period, from PostgreSQL; priced with --pricing");
    usage_options uo;
    us->add_option("--postgres", uo.postgres,
                   "PostgreSQL connection string (default: $PLUGMON_POSTGRES)");
    us->add_option("--from", uo.from, "Start, included: YYYY-MM-DD (UTC midnight) or RFC 3339")
        ->required();
    us->add_option("--to", uo.to, "End, excluded: YYYY-MM-DD (UTC midnight) or RFC 3339")
        ->required();
    us->add_option("--pricing", uo.pricing,
                   "Pricing file (TOML); without it the usage is printed unpriced");
    us->add_option("--tenant", uo.tenant, "Only this tenant");
    us->add_option("--format", uo.format, "Output: table, csv or json")
        ->check(CLI::IsMember({"table", "csv", "json"}))
        ->capture_default_str();
    us->add_flag("--strict", uo.strict, "Exit with status 3 when some usage matches no plan");
    const plugmon::ctl::backup::commands backup_commands(app);
    app.require_subcommand(1);
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        const int rc = app.exit(e);
        return rc == 0 ? 0 : 2;
    }
    if (top->parsed()) {
        // The upper bound keeps every sleep and poll timeout far from overflow.
        if (!(interval > 0 && interval <= 86400)) {
            std::fprintf(
                stderr,
                "plugmonctl: --interval must be a number of seconds in (0, 86400], got %g\n",
                interval);
            return 2;
        }
        if (iterations_opt->count() > 0 && iterations < 1) {
            std::fprintf(stderr, "plugmonctl: --iterations must be at least 1, got %d\n",
                         iterations);
            return 2;
        }
    }
    if (const auto rc = backup_commands.run_if_parsed()) return *rc;
    if (us->parsed()) {
        try {
            return run_usage(uo);
        } catch (const std::exception& e) {
            std::fprintf(stderr, "plugmonctl: usage: %s\n", e.what());
            return 1;
        }
    }
    try {
        if (st->parsed()) return status(agent);
        if (top->parsed()) {
            plugmon::ctl::top_options opts;
            opts.agent = agent;
            opts.interval_s = interval;
            const plugmon::ctl::top_fetch fetch = [&agent](const std::string& target) {
                return http_get(agent, target);
            };
            if (iterations_opt->count() == 0 && ::isatty(STDIN_FILENO) && ::isatty(STDOUT_FILENO))
                return plugmon::ctl::run_top_interactive(opts, fetch);
            opts.iterations = iterations_opt->count() > 0 ? iterations : 1;
            return plugmon::ctl::run_top_batch(opts, fetch, std::cout);
        }
    } catch (const plugmon::ctl::top_terminal_error& e) {
        std::fprintf(stderr, "plugmonctl: top: the terminal: %s\n", e.what());
        return 1;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "plugmonctl: cannot reach the agent at %s: %s\n", agent.c_str(),
                     e.what());
        return 1;
    }
    return 0;
}
