// Label value globs for rule selectors: `*` (any run of bytes) and `?` (one byte), nothing else.
#pragma once

#include <string_view>

namespace plugmon::agent::alert {

/// True when `text` matches `pattern` as a whole. `*` matches any run of bytes (also none), `?`
/// exactly one byte; every other byte matches itself (no escapes, no classes). Iterative, no
/// recursion: it keeps only the last `*` to resume from, so it needs no more than
/// |pattern| x |text| steps and no memory. Thread-safe; never throws.
bool glob_match(std::string_view pattern, std::string_view text) noexcept;

}  // namespace plugmon::agent::alert
