// cephlock's bridge to the two per-object queries that librados 16.2 offers only in C++.
//
// The C API of 16.2 has no list_watchers and no list_snaps, yet librbd judges a lock owner's
// liveness by the object's watchers (rbd spec §1.6.3) and `rados listsnaps` is how clones are
// inspected. Both exist on librados::IoCtx. This file wraps exactly those two calls behind a
// C ABI so that the Rust side never touches a C++ type:
//
// * the C++ IoCtx is a second reference to the caller's C ioctx (from_rados_ioctx_t takes a
//   reference and drops it on scope exit), so the pool, namespace and read snapshot are the
//   caller's;
// * results come back in memory allocated with malloc, released with cephlock_rados_free;
// * no C++ exception crosses the boundary: allocation failure becomes -ENOMEM, anything else
//   -EIO.

#include <rados/librados.hpp>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <list>
#include <new>
#include <string>
#include <vector>

namespace {

// Appends v as little-endian bytes (the Rust side decodes with Ceph's little-endian rules).
void put_le64(std::vector<unsigned char> &out, uint64_t v) {
  for (int i = 0; i < 8; ++i) {
    out.push_back(static_cast<unsigned char>(v >> (8 * i)));
  }
}

void put_le32(std::vector<unsigned char> &out, uint32_t v) {
  for (int i = 0; i < 4; ++i) {
    out.push_back(static_cast<unsigned char>(v >> (8 * i)));
  }
}

}  // namespace

extern "C" {

// The object's watchers as a malloc'd array of obj_watch_t (the C struct from
// rados/rados_types.h). On success *out is non-null (even for zero watchers) and *count is
// the number of entries. Returns 0 or a negative errno.
int cephlock_rados_list_watchers(rados_ioctx_t io, const char *oid, struct obj_watch_t **out,
                                 size_t *count) {
  if (io == nullptr || oid == nullptr || out == nullptr || count == nullptr) {
    return -EINVAL;
  }
  *out = nullptr;
  *count = 0;
  try {
    librados::IoCtx ctx;
    librados::IoCtx::from_rados_ioctx_t(io, ctx);
    std::list<obj_watch_t> watchers;
    int r = ctx.list_watchers(oid, &watchers);
    if (r < 0) {
      return r;
    }
    size_t n = watchers.size();
    // One spare element so that malloc never sees 0 and a successful call always returns a
    // pointer the caller frees.
    auto *arr = static_cast<obj_watch_t *>(std::calloc(n + 1, sizeof(obj_watch_t)));
    if (arr == nullptr) {
      return -ENOMEM;
    }
    size_t i = 0;
    for (const auto &w : watchers) {
      arr[i] = w;
      // Guarantee termination whatever the library wrote.
      arr[i].addr[sizeof(arr[i].addr) - 1] = '\0';
      ++i;
    }
    *out = arr;
    *count = n;
    return 0;
  } catch (const std::bad_alloc &) {
    return -ENOMEM;
  } catch (...) {
    return -EIO;
  }
}

// The object's snap set, encoded as
//   le64 seq, le32 n, n x { le64 clone_id, le32 m, m x le64 snap, le64 size }
// in a malloc'd buffer. The caller must have set the ioctx to read at LIBRADOS_SNAP_DIR, as
// librados requires for this query. Returns 0 or a negative errno.
int cephlock_rados_list_snaps(rados_ioctx_t io, const char *oid, unsigned char **out, size_t *len) {
  if (io == nullptr || oid == nullptr || out == nullptr || len == nullptr) {
    return -EINVAL;
  }
  *out = nullptr;
  *len = 0;
  try {
    librados::IoCtx ctx;
    librados::IoCtx::from_rados_ioctx_t(io, ctx);
    librados::snap_set_t ss;
    int r = ctx.list_snaps(oid, &ss);
    if (r < 0) {
      return r;
    }
    std::vector<unsigned char> buf;
    put_le64(buf, ss.seq);
    put_le32(buf, static_cast<uint32_t>(ss.clones.size()));
    for (const auto &c : ss.clones) {
      put_le64(buf, c.cloneid);
      put_le32(buf, static_cast<uint32_t>(c.snaps.size()));
      for (auto s : c.snaps) {
        put_le64(buf, s);
      }
      put_le64(buf, c.size);
    }
    auto *mem = static_cast<unsigned char *>(std::malloc(buf.size()));
    if (mem == nullptr) {
      return -ENOMEM;
    }
    std::memcpy(mem, buf.data(), buf.size());
    *out = mem;
    *len = buf.size();
    return 0;
  } catch (const std::bad_alloc &) {
    return -ENOMEM;
  } catch (...) {
    return -EIO;
  }
}

// Releases memory returned by the functions above.
void cephlock_rados_free(void *p) { std::free(p); }

}  // extern "C"
