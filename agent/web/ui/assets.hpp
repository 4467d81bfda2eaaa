// The dashboard's files, embedded at build time (embed_assets.cmake), each with its gzip form and
// a strong ETag computed once.
#pragma once

#include <nlohmann/json.hpp>

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace plugmon::agent::ui {

namespace detail {
/// One embedded file as the generated source lists it.
struct embedded_asset {
    const char* name;
    const char* content_type;
    std::string_view bytes;
};
extern const embedded_asset embedded_assets[];
extern const std::size_t embedded_asset_count;
}  // namespace detail

struct asset {
    std::string name;  ///< "app.js"
    std::string content_type;
    std::string_view bytes;
    std::string gzip;    ///< the bytes gzip-compressed (level 9)
    std::string sha256;  ///< hex digest of the bytes
    std::string etag;    ///< "\"<first 32 hex digits of sha256>\""
};

/// Every asset, by name; prepared (compressed, hashed) on first use, then read-only.
const std::vector<asset>& assets();

/// The asset called `name`, or null. Exact names only: no paths, no directory listing.
const asset* find_asset(std::string_view name);

/// /ui/manifest.json: {"assets": [{"name", "content_type", "bytes", "gzip_bytes", "sha256"}],
/// "total_bytes", "total_gzip_bytes"}.
nlohmann::json manifest_json();

}  // namespace plugmon::agent::ui
