// Specifies plugmonctl top: rates between two polls, the frame text, and the batch loop.
#include "ctl/top/top.hpp"

#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace plugmon::ctl {
namespace {

using json = nlohmann::json;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

/// One entry of /api/v1/plugins with the two required fields, plus `extra`.
json plugin(const std::string& name, double calls, double query_seconds,
            const json& extra = json::object()) {
    json p = {{"plugin", name}, {"calls", calls}, {"query_seconds", query_seconds}};
    p.update(extra);
    return p;
}

/// The full shape the agent is moving to.
json full_plugin(const std::string& name) {
    json p = json::parse(R"({"plugin": "", "calls": 1200, "errors": 3, "error_ratio": 0.0025,
        "rows": 5000, "query_seconds": 12.5, "executions": 300, "cpu_seconds": 1.25,
        "live_bytes": 1048576, "alloc_tracked": true,
        "since_start": {"p50_seconds": 0.001, "p95_seconds": 0.004, "p99_seconds": 0.009,
                        "max_seconds": 0.2},
        "window": {"start": 1795000000.0, "seconds": 10.0, "calls": 100, "errors": 1,
                   "query_seconds": 1.1, "p50_seconds": 0.001, "p95_seconds": 0.004,
                   "p99_seconds": 0.01, "max_seconds": 0.05},
        "leak": {"suspected": false, "slope_bytes_per_second": 12.0, "r2": 0.1},
        "tables": [{"op": "SELECT", "table": "invoices", "calls": 1000, "seconds": 10.0}]})");
    p["plugin"] = name;
    return p;
}

json producers_body(std::size_t count, double drained, const json& dropped) {
    json list = json::array();
    for (std::size_t i = 0; i < count; ++i) list.push_back({{"pid", 100 + i}});
    return {{"producers", list}, {"totals", {{"drained", drained}, {"dropped", dropped}}}};
}

json no_drops() { return {{"full", 0}, {"torn", 0}, {"invalid", 0}}; }

top_sample sample(json plugins, json producers = producers_body(1, 0, no_drops())) {
    top_sample s;
    s.plugins = std::move(plugins);
    s.producers = std::move(producers);
    return s;
}

std::vector<std::string> lines_of(const std::string& frame) {
    std::vector<std::string> out;
    std::istringstream in(frame);
    for (std::string line; std::getline(in, line);) out.push_back(line);
    return out;
}

/// The whitespace-separated cells of the table line that starts with `name`.
std::vector<std::string> cells_of(const std::string& frame, const std::string& name) {
    for (const auto& line : lines_of(frame)) {
        if (line.rfind(name + " ", 0) != 0 && line != name) continue;
        std::vector<std::string> cells;
        std::istringstream in(line);
        for (std::string cell; in >> cell;) cells.push_back(cell);
        return cells;
    }
    return {};
}

std::vector<std::string> names_in_order(const std::vector<top_row>& rows) {
    std::vector<std::string> names;
    for (const auto& r : rows) names.push_back(r.plugin);
    return names;
}

/// Terminal columns: one per code point.
std::size_t columns(const std::string& s) {
    std::size_t n = 0;
    for (const char c : s)
        if ((static_cast<unsigned char>(c) & 0xc0) != 0x80) ++n;
    return n;
}

top_view view(int width = 120, int height = 40) {
    top_view v;
    v.agent = "127.0.0.1:9464";
    v.clock = "12:34:56";
    v.width = width;
    v.height = height;
    return v;
}

// ---- rates ----

TEST(top_rows, are_ordered_by_query_time_spent_in_the_last_interval) {
    const json before = {plugin("billing", 100, 50.0), plugin("crm", 100, 1.0),
                         plugin("hr", 100, 10.0)};
    // billing has the most time in total but spent the least in this interval.
    const json after = {plugin("billing", 110, 50.1), plugin("crm", 200, 3.0),
                        plugin("hr", 150, 11.0)};
    EXPECT_THAT(names_in_order(top_rows(&before, after, 1.0, top_sort::time)),
                ElementsAre("crm", "hr", "billing"));
}

TEST(top_rows, ties_in_the_interval_go_to_the_larger_total_then_to_the_name) {
    const json before = {plugin("b", 1, 5.0), plugin("a", 1, 5.0), plugin("c", 1, 9.0)};
    const json after = {plugin("b", 1, 5.0), plugin("a", 1, 5.0), plugin("c", 1, 9.0)};
    EXPECT_THAT(names_in_order(top_rows(&before, after, 1.0, top_sort::time)),
                ElementsAre("c", "a", "b"));
}

TEST(top_rows, first_frame_has_no_rates_and_orders_by_total_time) {
    const json now = {plugin("small", 10, 1.0, {{"cpu_seconds", 1.0}}),
                      plugin("big", 10, 9.0, {{"cpu_seconds", 1.0}})};
    const auto rows = top_rows(nullptr, now, 0.0, top_sort::time);
    ASSERT_EQ(rows.size(), 2u);
    EXPECT_EQ(rows[0].plugin, "big");
    for (const auto& r : rows) {
        EXPECT_FALSE(r.calls_per_s);
        EXPECT_FALSE(r.busy);
        EXPECT_FALSE(r.cpu_percent);
    }
}

TEST(top_rows, rates_are_deltas_divided_by_the_elapsed_seconds) {
    const json before = {plugin("p", 1000, 10.0, {{"errors", 10}, {"cpu_seconds", 2.0}})};
    const json after = {plugin("p", 1500, 11.0, {{"errors", 20}, {"cpu_seconds", 2.5}})};
    const auto rows = top_rows(&before, after, 2.0, top_sort::time);
    ASSERT_EQ(rows.size(), 1u);
    EXPECT_DOUBLE_EQ(*rows[0].calls_per_s, 250.0);
    EXPECT_DOUBLE_EQ(*rows[0].busy, 0.5);
    EXPECT_DOUBLE_EQ(*rows[0].cpu_percent, 25.0);
    EXPECT_DOUBLE_EQ(*rows[0].error_percent, 2.0);  // 10 errors in 500 calls, not 20 in 1500
}

TEST(top_rows, error_percent_is_the_cumulative_ratio_when_no_calls_moved) {
    const json before = {plugin("p", 1000, 1.0, {{"errors", 5}, {"error_ratio", 0.005}})};
    const json after = before;
    const auto rows = top_rows(&before, after, 1.0, top_sort::time);
    EXPECT_DOUBLE_EQ(*rows[0].error_percent, 0.5);
    EXPECT_DOUBLE_EQ(*rows[0].calls_per_s, 0.0);
}

TEST(top_rows, error_percent_on_the_first_frame_is_the_ratio_or_errors_over_calls) {
    const json now = {plugin("ratio", 100, 1.0, {{"error_ratio", 0.25}}),
                      plugin("counts", 200, 1.0, {{"errors", 50}}), plugin("neither", 100, 1.0)};
    const auto rows = top_rows(nullptr, now, 0.0, top_sort::name);
    EXPECT_DOUBLE_EQ(*rows[0].error_percent, 25.0);  // counts
    EXPECT_FALSE(rows[1].error_percent);             // neither
    EXPECT_DOUBLE_EQ(*rows[2].error_percent, 25.0);  // ratio
}

TEST(top_rows, p99_comes_from_the_window_else_from_since_start) {
    json both = full_plugin("both");
    json only_total = full_plugin("only_total");
    only_total.erase("window");
    json null_window = full_plugin("null_window");
    null_window["window"]["p99_seconds"] = nullptr;
    const json now = {both, only_total, null_window, plugin("neither", 1, 1.0)};
    const auto rows = top_rows(nullptr, now, 0.0, top_sort::name);
    EXPECT_DOUBLE_EQ(*rows[0].p99_s, 0.01);
    EXPECT_FALSE(rows[1].p99_s);
    EXPECT_DOUBLE_EQ(*rows[2].p99_s, 0.009);
    EXPECT_DOUBLE_EQ(*rows[3].p99_s, 0.009);
}

TEST(top_rows, live_bytes_only_when_allocations_are_tracked) {
    const json now = {plugin("tracked", 1, 1.0, {{"alloc_tracked", true}, {"live_bytes", 4096}}),
                      plugin("untracked", 1, 1.0, {{"alloc_tracked", false}, {"live_bytes", 4096}}),
                      plugin("unsaid", 1, 1.0, {{"live_bytes", 4096}})};
    const auto rows = top_rows(nullptr, now, 0.0, top_sort::name);
    EXPECT_DOUBLE_EQ(*rows[0].live_bytes, 4096.0);
    EXPECT_FALSE(rows[1].live_bytes);
    EXPECT_FALSE(rows[2].live_bytes);
}

TEST(top_rows, a_plugin_new_since_the_last_poll_has_no_rates_yet) {
    const json before = {plugin("old", 10, 1.0)};
    const json after = {plugin("old", 20, 1.5), plugin("new", 500, 5.0)};
    const auto rows = top_rows(&before, after, 1.0, top_sort::name);
    ASSERT_THAT(names_in_order(rows), ElementsAre("new", "old"));
    EXPECT_FALSE(rows[0].calls_per_s);
    EXPECT_DOUBLE_EQ(*rows[1].calls_per_s, 10.0);
}

TEST(top_rows, a_plugin_gone_since_the_last_poll_is_not_shown) {
    const json before = {plugin("gone", 10, 100.0), plugin("stays", 10, 1.0)};
    const json after = {plugin("stays", 30, 2.0)};
    const auto rows = top_rows(&before, after, 1.0, top_sort::time);
    ASSERT_THAT(names_in_order(rows), ElementsAre("stays"));
    EXPECT_DOUBLE_EQ(*rows[0].calls_per_s, 20.0);
}

TEST(top_rows, counters_that_went_backwards_are_a_reset_never_a_negative_rate) {
    const json before = {plugin("p", 1000, 10.0, {{"errors", 10}, {"cpu_seconds", 5.0}})};
    // Only cpu_seconds shrank, yet no rate of this plugin can be trusted across the reset.
    const json after = {
        plugin("p", 1100, 11.0, {{"errors", 12}, {"cpu_seconds", 0.5}, {"error_ratio", 0.01}})};
    const auto rows = top_rows(&before, after, 1.0, top_sort::time);
    EXPECT_FALSE(rows[0].calls_per_s);
    EXPECT_FALSE(rows[0].busy);
    EXPECT_FALSE(rows[0].cpu_percent);
    EXPECT_DOUBLE_EQ(*rows[0].error_percent, 1.0);  // the cumulative ratio
}

TEST(top_rows, no_rates_without_a_positive_elapsed_time) {
    const json before = {plugin("p", 10, 1.0)};
    const json after = {plugin("p", 20, 2.0)};
    EXPECT_FALSE(top_rows(&before, after, 0.0, top_sort::time)[0].calls_per_s);
    EXPECT_FALSE(top_rows(&before, after, -1.0, top_sort::time)[0].calls_per_s);
}

TEST(top_rows, odd_entries_are_skipped_and_odd_fields_are_unknown) {
    const json now = json::parse(R"([
        {"calls": 5},
        {"plugin": 42, "calls": 5},
        "not an object",
        {"plugin": "strings", "calls": "many", "query_seconds": null, "window": [],
         "leak": {"suspected": "yes"}, "alloc_tracked": 1, "live_bytes": 10},
        {"plugin": "strings", "calls": 7}
    ])");
    const auto rows = top_rows(&now, now, 1.0, top_sort::time);
    ASSERT_EQ(rows.size(), 1u);  // the duplicate name is ignored too
    EXPECT_FALSE(rows[0].calls_per_s);
    EXPECT_FALSE(rows[0].p99_s);
    EXPECT_FALSE(rows[0].live_bytes);
    EXPECT_FALSE(rows[0].leak);
    EXPECT_TRUE(top_rows(nullptr, json::object(), 0.0, top_sort::time).empty());
}

TEST(top_rows, other_sort_keys_order_by_their_column_then_name) {
    const json before = {plugin("a", 0, 0.0, {{"errors", 0}}), plugin("b", 0, 0.0, {{"errors", 0}}),
                         plugin("c", 0, 0.0, {{"errors", 0}})};
    json a = plugin("a", 50, 0.0, {{"errors", 25}, {"since_start", {{"p99_seconds", 0.5}}}});
    json b = plugin("b", 100, 0.0, {{"errors", 1}});
    json c = plugin("c", 10, 0.0, {{"errors", 0}, {"since_start", {{"p99_seconds", 0.9}}}});
    const json after = {a, b, c};
    EXPECT_THAT(names_in_order(top_rows(&before, after, 1.0, top_sort::calls)),
                ElementsAre("b", "a", "c"));
    EXPECT_THAT(names_in_order(top_rows(&before, after, 1.0, top_sort::p99)),
                ElementsAre("c", "a", "b"));
    EXPECT_THAT(names_in_order(top_rows(&before, after, 1.0, top_sort::errors)),
                ElementsAre("a", "b", "c"));
    EXPECT_THAT(names_in_order(top_rows(&before, json{c, b, a}, 1.0, top_sort::name)),
                ElementsAre("a", "b", "c"));
}

TEST(top_sort, cycles_through_every_key_back_to_time) {
    std::vector<std::string> seen;
    top_sort k = top_sort::time;
    for (int i = 0; i < 5; ++i, k = next(k)) seen.push_back(to_string(k));
    EXPECT_THAT(seen, ElementsAre("time", "calls/s", "p99", "errors", "name"));
    EXPECT_EQ(k, top_sort::time);
}

// ---- units ----

TEST(human_units, seconds_switch_between_microseconds_milliseconds_and_seconds) {
    EXPECT_EQ(human_seconds(0), "0\u00b5s");
    EXPECT_EQ(human_seconds(0.000850), "850\u00b5s");
    EXPECT_EQ(human_seconds(0.0009996), "1.0ms");  // not "1000µs"
    EXPECT_EQ(human_seconds(0.009), "9.0ms");
    EXPECT_EQ(human_seconds(0.25), "250.0ms");
    EXPECT_EQ(human_seconds(2.5), "2.50s");
    EXPECT_EQ(human_seconds(1234.0), "1234s");
}

TEST(human_units, bytes_use_binary_prefixes) {
    EXPECT_EQ(human_bytes(0), "0B");
    EXPECT_EQ(human_bytes(1023), "1023B");
    EXPECT_EQ(human_bytes(1536), "1.5KiB");
    EXPECT_EQ(human_bytes(1048576), "1.0MiB");
    EXPECT_EQ(human_bytes(1048575), "1.0MiB");  // not "1024.0KiB"
    EXPECT_EQ(human_bytes(3.5 * 1024 * 1024 * 1024), "3.5GiB");
}

// ---- the frame ----

TEST(render_top, header_names_the_agent_clock_producers_drained_rate_and_drops) {
    const auto before = sample(json::array(), producers_body(2, 1000, no_drops()));
    const auto after =
        sample(json::array(),
               producers_body(3, 4000,
                              {{"full", 5}, {"torn", 1}, {"invalid", 2}}));
    const auto header = lines_of(render_top(&before, after, 2.0, view()))[0];
    EXPECT_EQ(header, "127.0.0.1:9464  12:34:56  producers 3  drained 1500/s  drops 8  sort time");
}

TEST(render_top, a_long_header_gives_up_the_sort_key_before_any_figure) {
    const auto before = sample(json::array(), producers_body(12, 0, no_drops()));
    const auto after = sample(
        json::array(),
        producers_body(12, 123456,
                       {{"full", 1234}, {"torn", 0}, {"invalid", 0}}));
    top_view v = view(80);
    v.agent = "127.0.0.1:19464";
    v.sort = top_sort::calls;
    const auto header = lines_of(render_top(&before, after, 1.0, v))[0];
    EXPECT_EQ(columns(header), 80u);
    EXPECT_THAT(header, StartsWith("127.0.0.1:19464  12:34:56  producers 12  drained 123456/s  "
                                   "drops 1234  sort "));
}

TEST(render_top, first_frame_shows_dashes_for_every_rate) {
    const auto now = sample({full_plugin("billing")}, producers_body(1, 50, no_drops()));
    const auto frame = render_top(nullptr, now, 0.0, view());
    EXPECT_THAT(lines_of(frame)[0], HasSubstr("drained -/s"));
    // PLUGIN CALLS/S ERR% P99 TIME/S CPU LIVE
    EXPECT_THAT(cells_of(frame, "billing"),
                ElementsAre("billing", "-", "0.25%", "10.0ms", "-", "-", "1.0MiB"));
}

TEST(render_top, second_frame_shows_rates_in_human_units) {
    json before_p = full_plugin("billing");
    json after_p = full_plugin("billing");
    after_p["calls"] = 1700;          // +500 calls in 2 s
    after_p["errors"] = 8;            // +5 errors: 1%
    after_p["query_seconds"] = 13.5;  // +1 s of queries in 2 s
    after_p["cpu_seconds"] = 1.75;    // +0.5 s of CPU in 2 s
    after_p["live_bytes"] = 3 * 1024 * 1024;
    after_p["leak"]["suspected"] = true;
    const auto before = sample({before_p});
    const auto frame = render_top(&before, sample({after_p}), 2.0, view());
    EXPECT_THAT(cells_of(frame, "billing"), ElementsAre("billing", "250.0", "1.00%", "10.0ms",
                                                        "0.500", "25.0%", "3.0MiB", "!"));
}

TEST(render_top, the_leak_marker_sits_under_its_column_only_when_suspected) {
    json leaking = plugin("leaking", 1, 2.0, {{"leak", {{"suspected", true}}}});
    json fine = plugin("fine", 1, 1.0, {{"leak", {{"suspected", false}}}});
    const auto lines = lines_of(render_top(nullptr, sample({leaking, fine}), 0.0, view()));
    ASSERT_GE(lines.size(), 4u);
    EXPECT_EQ(lines[2].find('!'), lines[1].find("LEAK"));
    EXPECT_EQ(lines[3].find('!'), std::string::npos);
}

TEST(render_top, the_older_agent_shape_shows_dashes_where_fields_are_missing) {
    // What the agent returned before window/since_start/live_bytes existed.
    const json old_shape = {
        {"plugin", "billing"}, {"calls", 10},         {"errors", 0},
        {"error_ratio", 0.0},  {"rows", 5},           {"query_seconds", 0.5},
        {"executions", 2},     {"cpu_seconds", 0.01}, {"tables", json::array()}};
    const auto frame = render_top(nullptr, sample({old_shape}), 0.0, view());
    EXPECT_THAT(cells_of(frame, "billing"),
                ElementsAre("billing", "-", "0.00%", "-", "-", "-", "-"));
}

TEST(render_top, a_missing_producers_body_shows_dashes_in_the_header) {
    const auto frame = render_top(nullptr, sample(json::array(), json::object()), 0.0, view());
    EXPECT_THAT(lines_of(frame)[0], HasSubstr("producers -  drained -/s  drops -"));
}

TEST(render_top, drained_rate_is_unknown_when_the_total_went_backwards) {
    const auto before = sample(json::array(), producers_body(1, 5000, no_drops()));
    const auto after = sample(json::array(), producers_body(1, 10, no_drops()));
    EXPECT_THAT(lines_of(render_top(&before, after, 1.0, view()))[0], HasSubstr("drained -/s"));
}

TEST(render_top, columns_are_titled_and_an_empty_list_says_so) {
    const auto lines = lines_of(render_top(nullptr, sample(json::array()), 0.0, view()));
    ASSERT_EQ(lines.size(), 3u);
    EXPECT_THAT(lines[1], StartsWith("PLUGIN"));
    for (const char* title : {"CALLS/S", "ERR%", "P99", "TIME/S", "CPU", "LIVE", "LEAK"})
        EXPECT_THAT(lines[1], HasSubstr(title));
    EXPECT_EQ(lines[2], "(no plugins reported yet)");
}

TEST(render_top, every_line_fits_the_width_and_long_names_end_in_an_ellipsis) {
    const std::string long_name(60, 'x');
    json p = full_plugin(long_name);
    for (const int width : {100, 80, 66, 40, 10, 1}) {
        const auto frame = render_top(nullptr, sample({p}), 0.0, view(width));
        for (const auto& line : lines_of(frame))
            EXPECT_LE(columns(line), static_cast<std::size_t>(width))
                << "width " << width << ": " << line;
    }
    const auto at_80 = lines_of(render_top(nullptr, sample({p}), 0.0, view(80)));
    ASSERT_GE(at_80.size(), 3u);
    EXPECT_THAT(at_80[2], StartsWith(std::string(21, 'x') + "\u2026 "));
    EXPECT_THAT(at_80[2], HasSubstr("1.0MiB"));  // the name gave way, not the figures
}

TEST(render_top, short_names_keep_the_table_narrow) {
    const auto lines = lines_of(render_top(nullptr, sample({full_plugin("ab")}), 0.0, view(200)));
    EXPECT_THAT(lines[1], StartsWith("PLUGIN   CALLS/S"));  // PLUGIN is the narrowest it gets
    EXPECT_THAT(lines[2], StartsWith("ab     "));
}

TEST(render_top, never_more_lines_than_the_height_and_says_how_many_are_hidden) {
    json many = json::array();
    for (int i = 0; i < 30; ++i) many.push_back(plugin("p" + std::to_string(i), 1, 30.0 - i));
    const auto lines = lines_of(render_top(nullptr, sample(many), 0.0, view(80, 10)));
    ASSERT_EQ(lines.size(), 10u);
    EXPECT_THAT(lines[2], StartsWith("p0 "));  // the most time first
    EXPECT_THAT(lines[8], StartsWith("p6 "));
    EXPECT_EQ(lines[9], "\u2026 23 more");
    for (const int height : {1, 2, 3}) {
        const auto few = lines_of(render_top(nullptr, sample(many), 0.0, view(80, height)));
        EXPECT_EQ(few.size(), static_cast<std::size_t>(height));
    }
    EXPECT_EQ(lines_of(render_top(nullptr, sample(many), 0.0, view(80, 32))).size(), 32u);
}

TEST(render_top, names_cannot_send_control_sequences_to_the_terminal) {
    const auto frame =
        render_top(nullptr, sample({plugin("evil\x1b[2J\x07\xc2\x9b", 1, 1.0)}), 0.0, view());
    EXPECT_THAT(frame, Not(HasSubstr("\x1b")));
    EXPECT_THAT(frame, Not(HasSubstr("\x07")));
    EXPECT_THAT(frame, Not(HasSubstr("\xc2\x9b")));
    EXPECT_THAT(frame, HasSubstr("evil?[2J??"));
}

TEST(render_top, an_unreachable_agent_is_shown_in_the_header_over_the_last_good_table) {
    top_view v = view();
    v.error = "Connection refused";
    const auto lines = lines_of(render_top(nullptr, sample({plugin("billing", 1, 1.0)}), 0.0, v));
    EXPECT_EQ(lines[0], "127.0.0.1:9464  12:34:56  UNREACHABLE: Connection refused (retrying)");
    EXPECT_THAT(lines[2], StartsWith("billing"));
}

TEST(render_top, the_header_names_the_sort_key) {
    top_view v = view();
    v.sort = top_sort::p99;
    EXPECT_THAT(lines_of(render_top(nullptr, sample(json::array()), 0.0, v))[0],
                HasSubstr("sort p99"));
}

// ---- polling and the batch loop ----

/// An agent that answers from a script of plugin lists, one per poll of /api/v1/plugins.
struct scripted_agent {
    std::vector<json> plugin_lists;
    std::size_t polls = 0;
    double drained = 0;
    std::string operator()(const std::string& target) {
        if (target == "/api/v1/plugins") {
            if (polls >= plugin_lists.size()) throw std::runtime_error("Connection refused");
            return json{{"plugins", plugin_lists[polls++]}}.dump();
        }
        if (target == "/api/v1/producers") {
            drained += 100;
            return producers_body(1, drained, no_drops()).dump();
        }
        throw std::runtime_error("unexpected target " + target);
    }
};

TEST(fetch_top_sample, takes_the_plugins_array_and_the_whole_producers_body) {
    scripted_agent agent{{json::array({plugin("billing", 1, 1.0)})}};
    const top_sample s = fetch_top_sample(std::ref(agent));
    ASSERT_TRUE(s.plugins.is_array());
    EXPECT_EQ(s.plugins[0]["plugin"], "billing");
    EXPECT_EQ(s.producers["totals"]["drained"], 100);
}

TEST(fetch_top_sample, rejects_bodies_that_are_not_the_expected_json) {
    const auto answering = [](std::string plugins_body) {
        return [plugins_body](const std::string& target) -> std::string {
            return target == "/api/v1/plugins" ? plugins_body : "{}";
        };
    };
    EXPECT_THROW(fetch_top_sample(answering("<html>")), std::runtime_error);
    EXPECT_THROW(fetch_top_sample(answering("[]")), std::runtime_error);
    EXPECT_THROW(fetch_top_sample(answering(R"({"plugins": {}})")), std::runtime_error);
    EXPECT_NO_THROW(fetch_top_sample(answering(R"({"plugins": []})")));
}

/// Options whose clock only moves when the loop sleeps.
top_options fake_clock_options(double& now, std::vector<double>& sleeps) {
    top_options o;
    o.agent = "127.0.0.1:9464";
    o.interval_s = 0.5;
    o.monotonic_s = [&now] { return now; };
    o.sleep_s = [&now, &sleeps](double s) {
        sleeps.push_back(s);
        now += s;
    };
    o.wall_clock = [] { return std::string("12:00:00"); };
    o.size = [] { return std::pair<int, int>(80, 24); };
    return o;
}

TEST(run_top_batch, prints_the_frames_separated_by_a_blank_line_one_interval_apart) {
    double now = 100.0;
    std::vector<double> sleeps;
    top_options o = fake_clock_options(now, sleeps);
    o.iterations = 3;
    scripted_agent agent{{json::array({plugin("billing", 100, 1.0)}),
                          json::array({plugin("billing", 150, 1.5)}),
                          json::array({plugin("billing", 150, 1.5)})}};
    std::ostringstream out;
    EXPECT_EQ(run_top_batch(o, std::ref(agent), out), 0);
    EXPECT_THAT(sleeps, ElementsAre(0.5, 0.5));

    const std::string text = out.str();
    EXPECT_THAT(text, Not(HasSubstr("\x1b")));
    std::vector<std::string> frames;
    std::size_t start = 0;
    for (std::size_t gap; (gap = text.find("\n\n", start)) != std::string::npos; start = gap + 2)
        frames.push_back(text.substr(start, gap + 1 - start));
    frames.push_back(text.substr(start));
    ASSERT_EQ(frames.size(), 3u);
    EXPECT_EQ(cells_of(frames[0], "billing")[1], "-");
    EXPECT_EQ(cells_of(frames[1], "billing")[1], "100.0");  // 50 calls in 0.5 s
    EXPECT_EQ(cells_of(frames[2], "billing")[1], "0.0");
    EXPECT_THAT(frames[1], StartsWith("127.0.0.1:9464  12:00:00  producers 1  drained 200/s"));
}

TEST(run_top_batch, a_failed_poll_is_an_exception_for_the_caller) {
    double now = 0;
    std::vector<double> sleeps;
    top_options o = fake_clock_options(now, sleeps);
    o.iterations = 2;
    scripted_agent agent{{json::array({plugin("billing", 1, 1.0)})}};  // gone after the first poll
    std::ostringstream out;
    EXPECT_THROW(run_top_batch(o, std::ref(agent), out), std::runtime_error);
    EXPECT_THAT(out.str(), HasSubstr("billing"));  // the first frame was printed
}

TEST(run_top_batch, a_slow_poll_shortens_the_next_sleep) {
    double now = 0;
    std::vector<double> sleeps;
    top_options o = fake_clock_options(now, sleeps);
    o.iterations = 2;
    scripted_agent agent{{json::array(), json::array()}};
    const top_fetch slow = [&](const std::string& target) {
        now += 0.125;
        return agent(target);
    };
    std::ostringstream out;
    run_top_batch(o, slow, out);
    EXPECT_THAT(sleeps, ElementsAre(0.25));  // 0.5 s after the first poll began
}

}  // namespace
}  // namespace plugmon::ctl
