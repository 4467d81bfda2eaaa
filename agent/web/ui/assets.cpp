// The embedded dashboard files: gzip forms and digests, computed once.
#include "web/ui/assets.hpp"

#include "common/sha256.hpp"

#include <zlib.h>

#include <stdexcept>

namespace plugmon::agent::ui {

namespace {

std::string gzip_bytes(std::string_view in) {
    z_stream z{};
    // windowBits 15 + 16: a gzip header and trailer, as Content-Encoding: gzip wants.
    if (deflateInit2(&z, Z_BEST_COMPRESSION, Z_DEFLATED, 15 + 16, 9, Z_DEFAULT_STRATEGY) != Z_OK)
        throw std::runtime_error("deflateInit2 failed");
    std::string out(deflateBound(&z, uLong(in.size())), '\0');
    z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
    z.avail_in = uInt(in.size());
    z.next_out = reinterpret_cast<Bytef*>(out.data());
    z.avail_out = uInt(out.size());
    const int rc = deflate(&z, Z_FINISH);
    out.resize(z.total_out);
    deflateEnd(&z);
    if (rc != Z_STREAM_END) throw std::runtime_error("deflate failed");
    return out;
}

std::vector<asset> prepare() {
    std::vector<asset> v;
    v.reserve(detail::embedded_asset_count);
    for (std::size_t i = 0; i < detail::embedded_asset_count; ++i) {
        const auto& e = detail::embedded_assets[i];
        asset a;
        a.name = e.name;
        a.content_type = e.content_type;
        a.bytes = e.bytes;
        a.gzip = gzip_bytes(e.bytes);
        a.sha256 = to_hex(sha256(e.bytes));
        a.etag = "\"" + a.sha256.substr(0, 32) + "\"";
        v.push_back(std::move(a));
    }
    return v;
}

}  // namespace

const std::vector<asset>& assets() {
    static const std::vector<asset> all = prepare();
    return all;
}

const asset* find_asset(std::string_view name) {
    for (const asset& a : assets())
        if (a.name == name) return &a;
    return nullptr;
}

nlohmann::json manifest_json() {
    nlohmann::json list = nlohmann::json::array();
    std::size_t total = 0, total_gzip = 0;
    for (const asset& a : assets()) {
        list.push_back({{"name", a.name},
                        {"content_type", a.content_type},
                        {"bytes", a.bytes.size()},
                        {"gzip_bytes", a.gzip.size()},
                        {"sha256", a.sha256}});
        total += a.bytes.size();
        total_gzip += a.gzip.size();
    }
    return {{"assets", list}, {"total_bytes", total}, {"total_gzip_bytes", total_gzip}};
}

}  // namespace plugmon::agent::ui
