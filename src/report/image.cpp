#include <strata/report/image.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>

#include <strata/core/error.h>

#include "font.h"

// stb_image_write is compiled into this file with static linkage: no runtime dependency on
// libstb, and no stbi_* symbols exported from libstrata.so to clash with a host that has its own.
#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STB_IMAGE_WRITE_STATIC
#define STBI_WRITE_NO_STDIO
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wsign-compare"
#endif
#include <stb/stb_image_write.h>
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

namespace strata {
namespace {

// Caps keep width * height * 3 far from overflow and within what the PNG writer handles (int).
constexpr int64_t kMaxSide = int64_t{1} << 20;
constexpr int64_t kMaxPixels = int64_t{1} << 28;
// Bounds the Bresenham walk of draw_line (whose points are clipped one by one).
constexpr int64_t kMaxCoordinate = int64_t{1} << 24;

void check_scale(const char* caller, int scale) {
  STRATA_CHECK(scale >= 1 && scale <= 64, caller, ": scale ", scale, " is not in [1, 64]");
}

void append_bytes(void* context, void* data, int size) {
  static_cast<std::string*>(context)->append(static_cast<const char*>(data),
                                             static_cast<size_t>(size));
}

}  // namespace

Image::Image(int64_t width, int64_t height, Rgb background) : width_(width), height_(height) {
  STRATA_CHECK(width > 0 && height > 0, "Image: size ", width, " x ", height, " is not positive");
  STRATA_CHECK(width <= kMaxSide && height <= kMaxSide && width * height <= kMaxPixels,
               "Image: size ", width, " x ", height, " is too large (at most ", kMaxSide,
               " per side and ", kMaxPixels, " pixels)");
  pixels_.resize(static_cast<size_t>(width * height * 3));
  for (size_t i = 0; i < pixels_.size(); i += 3) {
    pixels_[i] = background.r;
    pixels_[i + 1] = background.g;
    pixels_[i + 2] = background.b;
  }
}

Rgb Image::at(int64_t x, int64_t y) const {
  STRATA_CHECK(x >= 0 && x < width_ && y >= 0 && y < height_, "Image::at: (", x, ", ", y,
               ") is outside the ", width_, " x ", height_, " image");
  const size_t i = static_cast<size_t>((y * width_ + x) * 3);
  return Rgb{pixels_[i], pixels_[i + 1], pixels_[i + 2]};
}

void Image::set(int64_t x, int64_t y, Rgb c) {
  if (x < 0 || x >= width_ || y < 0 || y >= height_) return;
  const size_t i = static_cast<size_t>((y * width_ + x) * 3);
  pixels_[i] = c.r;
  pixels_[i + 1] = c.g;
  pixels_[i + 2] = c.b;
}

void Image::fill_rect(int64_t x, int64_t y, int64_t w, int64_t h, Rgb c) {
  if (w <= 0 || h <= 0 || x >= width_ || y >= height_) return;
  // Clip without forming x + w for far-away rectangles, which could overflow.
  if (x < 0) {
    if (w <= -x) return;
    w += x;
    x = 0;
  }
  if (y < 0) {
    if (h <= -y) return;
    h += y;
    y = 0;
  }
  w = std::min(w, width_ - x);
  h = std::min(h, height_ - y);
  for (int64_t yy = y; yy < y + h; ++yy) {
    uint8_t* p = &pixels_[static_cast<size_t>((yy * width_ + x) * 3)];
    for (int64_t k = 0; k < w; ++k, p += 3) {
      p[0] = c.r;
      p[1] = c.g;
      p[2] = c.b;
    }
  }
}

void Image::draw_line(int64_t x0, int64_t y0, int64_t x1, int64_t y1, Rgb c, int thickness) {
  STRATA_CHECK(thickness >= 1 && thickness <= 1024, "Image::draw_line: thickness ", thickness,
               " is not in [1, 1024]");
  STRATA_CHECK(
      std::max({std::llabs(x0), std::llabs(y0), std::llabs(x1), std::llabs(y1)}) <= kMaxCoordinate,
      "Image::draw_line: endpoint (", x0, ", ", y0, ") or (", x1, ", ", y1, ") is further than ",
      kMaxCoordinate, " pixels from the origin");
  const int64_t half = (thickness - 1) / 2;
  // A line whose bounding box misses the image draws nothing.
  if (std::max(x0, x1) + thickness < 0 || std::max(y0, y1) + thickness < 0 ||
      std::min(x0, x1) - thickness >= width_ || std::min(y0, y1) - thickness >= height_)
    return;
  // Bresenham; each step stamps a thickness × thickness square centred on the point.
  const int64_t dx = std::llabs(x1 - x0), dy = -std::llabs(y1 - y0);
  const int64_t sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1;
  int64_t err = dx + dy;
  int64_t x = x0, y = y0;
  while (true) {
    if (thickness == 1)
      set(x, y, c);
    else
      fill_rect(x - half, y - half, thickness, thickness, c);
    if (x == x1 && y == y1) break;
    const int64_t e2 = 2 * err;
    if (e2 >= dy) {
      err += dy;
      x += sx;
    }
    if (e2 <= dx) {
      err += dx;
      y += sy;
    }
  }
}

void Image::draw_text(int64_t x, int64_t y, const std::string& text, Rgb c, int scale) {
  check_scale("Image::draw_text", scale);
  const std::string chars = detail::font_chars(text);
  for (size_t k = 0; k < chars.size(); ++k) {
    const uint8_t* cols = detail::glyph_columns(chars[k]);
    const int64_t gx = x + static_cast<int64_t>(k) * detail::kGlyphAdvance * scale;
    for (int col = 0; col < detail::kGlyphWidth; ++col)
      for (int row = 0; row < detail::kGlyphHeight; ++row)
        if (cols[col] & (1u << row)) fill_rect(gx + col * scale, y + row * scale, scale, scale, c);
  }
}

void Image::draw_text_upwards(int64_t x, int64_t y, const std::string& text, Rgb c, int scale) {
  const int64_t w = text_width(text, scale), h = text_height(scale);
  if (w == 0) return;
  // Drawn flat on a stamp, then turned; only ink is copied, so the stamp's background colour
  // needs only differ from c.
  const Rgb paper{static_cast<uint8_t>(c.r ^ 0xFF), c.g, c.b};
  Image flat(w, h, paper);
  flat.draw_text(0, 0, text, c, scale);
  for (int64_t v = 0; v < h; ++v)
    for (int64_t u = 0; u < w; ++u) {
      const Rgb p = flat.at(u, v);
      if (p.r == c.r && p.g == c.g && p.b == c.b) set(x + v, y + (w - 1 - u), c);
    }
}

int64_t Image::text_width(const std::string& text, int scale) {
  check_scale("Image::text_width", scale);
  const auto n = static_cast<int64_t>(detail::font_chars(text).size());
  // No spacing after the last glyph, so centred text is centred on its ink.
  return n == 0
             ? 0
             : (n * detail::kGlyphAdvance - (detail::kGlyphAdvance - detail::kGlyphWidth)) * scale;
}

int64_t Image::text_height(int scale) {
  check_scale("Image::text_height", scale);
  return int64_t{detail::kGlyphHeight} * scale;
}

std::string Image::to_png() const {
  std::string out;
  const int ok = stbi_write_png_to_func(append_bytes, &out, static_cast<int>(width_),
                                        static_cast<int>(height_), 3, pixels_.data(),
                                        static_cast<int>(width_ * 3));
  STRATA_CHECK(ok != 0, "Image::to_png: encoding the ", width_, " x ", height_, " image failed");
  return out;
}

void Image::save_png(const std::string& path) const {
  const std::string png = to_png();
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  STRATA_CHECK(f.good(), "Image::save_png: cannot open '", path, "' for writing");
  f.write(png.data(), static_cast<std::streamsize>(png.size()));
  f.close();
  STRATA_CHECK(!f.fail(), "Image::save_png: writing ", png.size(), " bytes to '", path, "' failed");
}

}  // namespace strata
