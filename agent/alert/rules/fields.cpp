// Strict typed getters over a TOML table for the rules parser; every problem names file:line:key.
#include "alert/rules/fields.hpp"
#include "common/diagnostics.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdio>

#include "common/duration.hpp"

namespace plugmon::agent::alert::detail {

namespace {}  // namespace

std::string format_diag(const std::string& file, int line, std::string_view key,
                        std::string_view problem) {
    std::string out = file + ":" + std::to_string(line) + ": ";
    if (!key.empty()) out += "key '" + std::string(key) + "': ";
    out += problem;
    return out;
}

void context::error(const toml::source_region& where, std::string_view key,
                    std::string_view problem) {
    const int line = int(where.begin.line);
    errors_.push_back({file_, line, format_diag(file_, line, key, problem)});
}

std::string format_number(double x) {
    char buf[64];
    const auto r = std::to_chars(buf, buf + sizeof buf, x);
    return std::string(buf, r.ptr);
}

fields::fields(context& c, const toml::table& t, std::string path,
               const std::vector<std::string_view>& known)
    : ctx_(c), table_(t), path_(std::move(path)) {
    for (auto&& [k, node] : t) {
        const std::string_view name = k.str();
        if (std::find(known.begin(), known.end(), name) != known.end()) continue;
        const auto hint =
            closest_name(name, known, [](std::string_view known_key) { return known_key; });
        ctx_.error(k.source(), key(name),
                   hint ? "unknown key (did you mean '" + std::string(*hint) + "'?)"
                        : std::string("unknown key"));
    }
}

std::string fields::key(std::string_view k) const {
    return path_.empty() ? std::string(k) : path_ + "." + std::string(k);
}

void fields::fail(std::string_view k, std::string_view problem) const {
    const toml::node* n = table_.get(k);
    ctx_.error(n != nullptr ? n->source() : table_.source(), key(k), problem);
}

void fields::missing(std::string_view k) const {
    ctx_.error(table_.source(), key(k), "missing (required)");
}

std::optional<std::string> fields::string(std::string_view k) const {
    const toml::node* n = get(k);
    if (n == nullptr) return std::nullopt;
    if (const auto* s = n->as_string()) return s->get();
    fail(k, "expected a string, got " + toml_type_name(*n));
    return std::nullopt;
}

std::optional<std::int64_t> fields::integer(std::string_view k, std::int64_t lo,
                                            std::int64_t hi) const {
    const toml::node* n = get(k);
    if (n == nullptr) return std::nullopt;
    const auto* i = n->as_integer();
    if (i == nullptr) {
        fail(k, "expected an integer, got " + toml_type_name(*n));
        return std::nullopt;
    }
    if (i->get() < lo || i->get() > hi) {
        fail(k, std::to_string(i->get()) + " is out of range (" + std::to_string(lo) + ".." +
                    std::to_string(hi) + ")");
        return std::nullopt;
    }
    return i->get();
}

std::optional<double> fields::number(std::string_view k) const {
    const toml::node* n = get(k);
    if (n == nullptr) return std::nullopt;
    double x = 0;
    if (const auto* i = n->as_integer()) {
        x = double(i->get());
    } else if (const auto* f = n->as_floating_point()) {
        x = f->get();
    } else {
        fail(k, "expected a number, got " + toml_type_name(*n));
        return std::nullopt;
    }
    if (!std::isfinite(x)) {
        fail(k, "must be finite");
        return std::nullopt;
    }
    return x;
}

std::optional<nanoseconds> fields::duration(std::string_view k, nanoseconds lo,
                                            nanoseconds hi) const {
    const toml::node* n = get(k);
    if (n == nullptr) return std::nullopt;
    if (n->is_integer() || n->is_floating_point()) {
        fail(k, "a bare number has no unit: write durations as strings such as \"10s\", \"5m\"");
        return std::nullopt;
    }
    const auto text = string(k);
    if (!text) return std::nullopt;
    const auto d = parse_duration(*text);
    if (!d) {
        fail(k, agent::quoted(*text) + " is not a duration (use e.g. \"30s\", \"5m\", \"1h\")");
        return std::nullopt;
    }
    if (*d < lo || *d > hi) {
        fail(k, format_duration(*d) + " is out of range (" + format_duration(lo) + ".." +
                    format_duration(hi) + ")");
        return std::nullopt;
    }
    return d;
}

std::optional<std::vector<std::string>> fields::strings(std::string_view k, bool unique) const {
    const toml::node* n = get(k);
    if (n == nullptr) return std::nullopt;
    const auto* arr = n->as_array();
    if (arr == nullptr) {
        fail(k, "expected an array of strings, got " + toml_type_name(*n));
        return std::nullopt;
    }
    std::vector<std::string> out;
    bool ok = true;
    for (std::size_t i = 0; i < arr->size(); ++i) {
        const toml::node& e = *arr->get(i);
        const auto* s = e.as_string();
        if (s == nullptr) {
            ctx_.error(e.source(), key(k), "expected strings, got " + toml_type_name(e));
            ok = false;
        } else if (unique && std::find(out.begin(), out.end(), s->get()) != out.end()) {
            ctx_.error(e.source(), key(k), agent::quoted(s->get()) + " is listed twice");
            ok = false;
        } else {
            out.push_back(s->get());
        }
    }
    if (!ok) return std::nullopt;
    return out;
}

std::optional<label_set> fields::string_table(std::string_view k) const {
    const toml::table* t = sub_table(k);
    if (t == nullptr) return std::nullopt;
    label_set out;
    bool ok = true;
    for (auto&& [name, node] : *t) {
        const auto* s = node.as_string();
        if (s == nullptr) {
            ctx_.error(node.source(), key(k) + "." + std::string(name.str()),
                       "expected a string, got " + toml_type_name(node));
            ok = false;
            continue;
        }
        out.emplace(std::string(name.str()), s->get());
    }
    if (!ok) return std::nullopt;
    return out;
}

const toml::table* fields::sub_table(std::string_view k) const {
    const toml::node* n = get(k);
    if (n == nullptr) return nullptr;
    if (const auto* t = n->as_table()) return t;
    fail(k, "expected a table, got " + toml_type_name(*n));
    return nullptr;
}

}  // namespace plugmon::agent::alert::detail
