// The `backup`, `backup verify` and `restore` subcommands of plugmonctl, registered on its CLI11 app.
#pragma once

#include "ctl/backup/backup.hpp"

#include <CLI/CLI.hpp>

#include <optional>
#include <string>

namespace plugmon::ctl::backup {

/// Adds the subcommands to `app` (which must outlive this object); after app.parse(),
/// run_if_parsed() runs the one given. Not copyable or movable (CLI11 holds pointers into it).
/// Not thread-safe.
class commands {
public:
    explicit commands(CLI::App& app);
    commands(const commands&) = delete;
    commands& operator=(const commands&) = delete;

    /// The exit status of the subcommand given (0 ok, 1 failed or refused, 2 bad input), or
    /// nullopt when none of these was given. Messages go to stderr, results to stdout.
    std::optional<int> run_if_parsed() const;

private:
    CLI::App* backup_ = nullptr;
    CLI::App* verify_ = nullptr;
    CLI::App* restore_ = nullptr;
    backup_options backup_options_;
    std::string verify_file_, verify_pg_bin_;
    restore_options restore_options_;
};

}  // namespace plugmon::ctl::backup
