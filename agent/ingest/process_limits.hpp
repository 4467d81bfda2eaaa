// A producer process's soft resource limits, read from /proc/<pid>/limits.
#pragma once

#include <cstdint>
#include <string_view>

namespace plugmon::agent {

struct process_limits {
    std::uint64_t open_files = 0;  ///< soft RLIMIT_NOFILE; 0 unknown or unlimited
    std::uint64_t processes = 0;   ///< soft RLIMIT_NPROC (threads count against it); 0 likewise
};

/// Parses the text of /proc/<pid>/limits ("Max open files  1024  524288  files" rows).
process_limits parse_process_limits(std::string_view text);

/// Reads /proc/<pid>/limits; all zero when the process is gone or the file unreadable.
process_limits read_process_limits(int pid);

}  // namespace plugmon::agent
