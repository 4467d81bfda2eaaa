// Private to rules/: typed, strict reading of one TOML table, problems collected rather than thrown.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <toml++/toml.h>

#include "alert/model.hpp"
#include "alert/rules/parse.hpp"
#include "common/diagnostics.hpp"

namespace plugmon::agent::alert::detail {

/// The file being read and the problems found in it so far.
class context {
public:
    explicit context(std::string file) : file_(std::move(file)) {}
    const std::string& file() const noexcept { return file_; }
    /// Records "FILE:LINE: key 'KEY': PROBLEM" at `where`.
    void error(const toml::source_region& where, std::string_view key, std::string_view problem);
    std::vector<diag>& errors() noexcept { return errors_; }
    std::vector<reference>& refs() noexcept { return refs_; }

private:
    std::string file_;
    std::vector<diag> errors_;
    std::vector<reference> refs_;
};

/// One table whose keys are all known in advance: any other key is reported on construction.
/// The typed getters return nullopt both when the key is absent and when its value is bad (the
/// problem is then recorded).
class fields {
public:
    fields(context& c, const toml::table& t, std::string path,
           const std::vector<std::string_view>& known);

    /// "PATH.KEY", the name used in messages.
    std::string key(std::string_view k) const;
    const toml::node* get(std::string_view k) const { return table_.get(k); }
    int line() const { return int(table_.source().begin.line); }
    const toml::table& table() const { return table_; }
    context& ctx() const { return ctx_; }
    /// Records a problem with key `k` at its value's line.
    void fail(std::string_view k, std::string_view problem) const;
    /// Records that a required key is absent, at the table's line.
    void missing(std::string_view k) const;

    std::optional<std::string> string(std::string_view k) const;
    std::optional<std::int64_t> integer(std::string_view k, std::int64_t lo, std::int64_t hi) const;
    std::optional<double> number(std::string_view k) const;
    std::optional<nanoseconds> duration(std::string_view k, nanoseconds lo, nanoseconds hi) const;
    /// An array of strings; `unique` refuses repeats.
    std::optional<std::vector<std::string>> strings(std::string_view k, bool unique = true) const;
    /// A table of string values (labels, headers, select).
    std::optional<label_set> string_table(std::string_view k) const;
    /// A sub-table (also an inline one); a non-table value is reported.
    const toml::table* sub_table(std::string_view k) const;

private:
    context& ctx_;
    const toml::table& table_;
    std::string path_;
};

/// Shortest text that reads back as the same double.
std::string format_number(double x);

}  // namespace plugmon::agent::alert::detail
