// Rules files as a set: glob expansion, reading, merging with unique names, references, digest.
#include <glob.h>
#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <ostream>
#include <sstream>
#include <system_error>

#include "alert/rules/fields.hpp"
#include "alert/rules/parse.hpp"
#include "alert/rules/rules.hpp"
#include "common/duration.hpp"
#include "common/sha256.hpp"

namespace plugmon::agent::alert {

namespace {

using detail::diag;
using detail::format_diag;
using detail::parsed_file;

constexpr std::size_t max_rules_bytes = 16u << 20;

/// The files one pattern names; problems go to `errors` (file "alert_rules").
std::vector<std::string> expand(const std::string& pattern, std::vector<diag>& errors) {
    const auto problem = [&](const std::string& what) {
        errors.push_back({pattern, 0, pattern + ": " + what});
    };
    if (pattern.find_first_of("*?[") == std::string::npos) {
        struct stat st {};
        if (::stat(pattern.c_str(), &st) != 0)
            problem("cannot read: " + std::generic_category().message(errno));
        else if (S_ISDIR(st.st_mode))
            problem("is a directory (use a glob such as " + pattern + "/*.toml)");
        else
            return {pattern};
        return {};
    }
    glob_t g{};
    const int rc = ::glob(pattern.c_str(), GLOB_ERR, nullptr, &g);
    std::vector<std::string> out;
    if (rc == 0)
        for (std::size_t i = 0; i < g.gl_pathc; ++i) out.emplace_back(g.gl_pathv[i]);
    ::globfree(&g);
    if (rc == GLOB_NOMATCH)
        problem("the glob matches no file");
    else if (rc != 0)
        problem("the glob cannot be expanded (a directory is unreadable?)");
    return out;
}

std::optional<std::string> read_text(const std::string& path, std::vector<diag>& errors) {
    std::ifstream in(path, std::ios::binary);
    std::string text;
    if (in) {
        std::ostringstream buf;
        buf << in.rdbuf();
        text = std::move(buf).str();
    }
    if (!in && !in.eof()) {
        errors.push_back({path, 0, path + ": cannot read: " + std::strerror(errno)});
        return std::nullopt;
    }
    if (text.size() > max_rules_bytes) {
        errors.push_back({path, 0, path + ": larger than 16 MiB"});
        return std::nullopt;
    }
    return text;
}

std::string at(const std::string& file, int line) { return file + ":" + std::to_string(line); }

/// Appends `part` to `all`, reporting names declared twice (in one file or across files).
void merge(rule_set& all, parsed_file& part, std::map<std::string, std::string>& seen,
           std::vector<diag>& errors) {
    const auto claim = [&](const char* what, const std::string& name, const std::string& file,
                           int line) {
        if (name.empty()) return true;  // reported as missing
        const auto [it, fresh] = seen.emplace(std::string(what) + ":" + name, at(file, line));
        if (fresh) return true;
        errors.push_back({file, line,
                          format_diag(file, line, std::string(what) + ".name",
                                      std::string(what) + " " + agent::quoted(name) +
                                          " is already declared at " + it->second)});
        return false;
    };
    for (auto& r : part.set.rules)
        if (claim("rule", r.name, r.file, r.line)) all.rules.push_back(std::move(r));
    for (auto& r : part.set.receivers)
        if (claim("receiver", r.name, r.file, r.line)) all.receivers.push_back(std::move(r));
    for (auto& p : part.set.escalations)
        if (claim("escalation", p.name, p.file, p.line)) all.escalations.push_back(std::move(p));
}

/// Reports references to receivers or policies that no file declares.
void resolve(const rule_set& set, const std::vector<detail::reference>& refs,
             std::vector<diag>& errors) {
    for (const auto& ref : refs) {
        const bool found = ref.policy
                               ? std::any_of(set.escalations.begin(), set.escalations.end(),
                                             [&](const auto& p) { return p.name == ref.name; })
                               : std::any_of(set.receivers.begin(), set.receivers.end(),
                                             [&](const auto& r) { return r.name == ref.name; });
        if (found) continue;
        const std::string what = ref.policy ? "escalation policy " : "receiver ";
        errors.push_back({ref.file, ref.line,
                          format_diag(ref.file, ref.line, ref.key,
                                      "unknown " + what + agent::quoted(ref.name))});
    }
}

/// Everything parsed from a list of (file, text) pairs, with every problem.
struct loaded {
    rule_set set;
    std::vector<diag> errors;
    std::map<std::string, std::array<std::size_t, 3>> counts;  // per file: rules, receivers, ...
};

loaded load_texts(const std::vector<std::pair<std::string, std::string>>& texts) {
    loaded out;
    std::map<std::string, std::string> seen;
    std::vector<detail::reference> refs;
    for (const auto& [file, text] : texts) {
        parsed_file part = detail::parse_file(text, file);
        out.counts[file] = {part.set.rules.size(), part.set.receivers.size(),
                            part.set.escalations.size()};
        out.errors.insert(out.errors.end(), part.errors.begin(), part.errors.end());
        refs.insert(refs.end(), part.refs.begin(), part.refs.end());
        merge(out.set, part, seen, out.errors);
        out.set.files.push_back(file);
    }
    resolve(out.set, refs, out.errors);
    out.set.digest = digest_of(out.set);
    return out;
}

std::vector<std::string> messages(const std::vector<diag>& errors) {
    std::vector<std::string> out;
    for (const auto& e : errors) out.push_back(e.message);
    return out;
}

/// Files named by the patterns, each once, in the order given; then their texts.
std::vector<std::pair<std::string, std::string>> read_all(const std::vector<std::string>& patterns,
                                                          std::vector<diag>& errors) {
    std::vector<std::string> files;
    for (const auto& p : patterns)
        for (auto& f : expand(p, errors))
            if (std::find(files.begin(), files.end(), f) == files.end())
                files.push_back(std::move(f));
    std::vector<std::pair<std::string, std::string>> texts;
    for (const auto& f : files)
        if (auto text = read_text(f, errors)) texts.emplace_back(f, std::move(*text));
    return texts;
}

void dump_labels(std::ostream& o, const label_set& l) {
    o << '{';
    for (const auto& [k, v] : l) o << agent::quoted(k) << '=' << agent::quoted(v) << ',';
    o << '}';
}

void dump_names(std::ostream& o, const std::vector<std::string>& names) {
    o << '[';
    for (const auto& n : names) o << agent::quoted(n) << ',';
    o << ']';
}

void dump_rule(std::ostream& o, const rule& r) {
    o << "rule " << agent::quoted(r.name) << ' ' << to_string(r.kind) << " select";
    dump_labels(o, r.select);
    o << " group_by";
    dump_names(o, r.group_by);
    o << " over " << r.over.count() << " for " << r.for_.count() << " kff "
      << r.keep_firing_for.count() << " min " << r.min_samples << " q "
      << detail::format_number(r.quantile);
    for (int s = 0; s < severity_count; ++s) {
        o << " L" << s;
        if (!r.levels[s]) continue;
        for (const auto& x : {r.levels[s]->above, r.levels[s]->below, r.levels[s]->clear_below,
                              r.levels[s]->clear_above})
            o << ',' << (x ? detail::format_number(*x) : "-");
    }
    o << " labels";
    dump_labels(o, r.labels);
    o << " annotations";
    dump_labels(o, r.annotations);
    o << " receivers";
    dump_names(o, r.receivers);
    o << " esc " << agent::quoted(r.escalation) << " nodata " << int(r.on_no_data) << ' '
      << r.no_data_after.count() << " repeat";
    for (const auto& d : r.repeat_interval) o << ',' << d.count();
    o << " down " << r.severity_down_delay.count() << " delay " << r.notify_delay.up.count() << ','
      << r.notify_delay.down.count() << ',' << r.notify_delay.max.count() << ','
      << detail::format_number(r.notify_delay.multiplier) << " flap " << r.flap_threshold << ','
      << r.flap_window.count() << '\n';
}

void dump_receiver(std::ostream& o, const receiver_spec& r) {
    o << "receiver " << agent::quoted(r.name) << ' ' << to_string(r.type) << ' '
      << agent::quoted(r.url) << ' ' << agent::quoted(r.secret_file) << ' '
      << agent::quoted(r.bearer_token_file) << " headers";
    dump_labels(o, r.headers);
    o << ' ' << r.timeout.count() << ',' << r.max_notifications_per_minute << ','
      << r.resend_interval.count() << ',' << r.resolved_resend_for.count() << ','
      << r.max_event_age.count() << '\n';
}

void dump_policy(std::ostream& o, const escalation_policy& p) {
    o << "escalation " << agent::quoted(p.name) << ' ' << int(p.condition) << ' ' << p.repeat;
    for (const auto& l : p.levels) {
        o << " level " << l.after.count() << ' ' << to_string(l.min_severity);
        dump_names(o, l.receivers);
    }
    o << '\n';
}

}  // namespace

rules_error::rules_error(std::vector<std::string> errors)
    : std::runtime_error([&] {
          std::string all;
          for (const auto& e : errors) all += (all.empty() ? "" : "\n") + e;
          return all;
      }()),
      errors_(std::move(errors)) {}

const std::vector<std::string>& labels_of(rule_kind kind) {
    static const std::vector<std::string> query{"plugin", "op", "table", "tenant"};
    static const std::vector<std::string> execution{"plugin", "tenant"};
    static const std::vector<std::string> plugin{"plugin"};
    static const std::vector<std::string> process{"process", "pid"};
    static const std::vector<std::string> none;
    switch (kind) {
        case rule_kind::error_ratio:
        case rule_kind::latency_quantile:
        case rule_kind::slow_rate:
            return query;
        case rule_kind::cpu_rate:
            return execution;
        case rule_kind::heap_bytes:
        case rule_kind::heap_leak:
        case rule_kind::pool_utilization:
        case rule_kind::pool_waiting:
            return plugin;
        case rule_kind::process_rss:
        case rule_kind::process_fds:
        case rule_kind::process_threads:
        case rule_kind::ring_drops:
            return process;
        case rule_kind::store_down:
        case rule_kind::watchdog:
            return none;
    }
    return none;
}

std::string digest_of(const rule_set& set) {
    std::ostringstream o;
    for (const auto& r : set.rules) dump_rule(o, r);
    for (const auto& r : set.receivers) dump_receiver(o, r);
    for (const auto& p : set.escalations) dump_policy(o, p);
    return to_hex(sha256(o.str()));
}

rule_set parse_rules(std::string_view toml_text, const std::string& file_name) {
    loaded l = load_texts({{file_name, std::string(toml_text)}});
    if (!l.errors.empty()) throw rules_error(messages(l.errors));
    return std::move(l.set);
}

rule_set load_rules(const std::vector<std::string>& patterns) {
    std::vector<diag> errors;
    const auto texts = read_all(patterns, errors);
    loaded l = load_texts(texts);
    errors.insert(errors.end(), l.errors.begin(), l.errors.end());
    if (!errors.empty()) throw rules_error(messages(errors));
    return std::move(l.set);
}

int check_rules(const std::vector<std::string>& files, std::ostream& out, std::ostream& err) {
    if (files.empty()) {
        err << "check-rules: no files given\n";
        return 1;
    }
    std::vector<diag> errors;
    const auto texts = read_all(files, errors);
    const loaded l = load_texts(texts);
    errors.insert(errors.end(), l.errors.begin(), l.errors.end());
    for (const auto& e : errors) err << e.message << '\n';
    for (const auto& [file, text] : texts) {
        const bool bad = std::any_of(errors.begin(), errors.end(),
                                     [&](const diag& e) { return e.file == file; });
        const auto& n = l.counts.at(file);
        out << file << ": " << n[0] << " rules, " << n[1] << " receivers, " << n[2]
            << " escalation policies: " << (bad ? "FAILED" : "OK") << '\n';
    }
    if (!errors.empty())
        err << errors.size() << (errors.size() == 1 ? " problem" : " problems") << " found\n";
    return errors.empty() ? 0 : 1;
}

}  // namespace plugmon::agent::alert
