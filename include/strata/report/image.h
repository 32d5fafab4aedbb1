// A plain RGB image in memory, written as PNG: what every strata picture (lens heatmaps, probe
// curves, relevance maps) is drawn into. Text is drawn with a small built-in bitmap font, so no
// font files are needed.
//
//   strata::Image img(640, 480, strata::Rgb{255, 255, 255});
//   img.fill_rect(10, 10, 100, 50, strata::Rgb{200, 30, 30});
//   img.draw_text(12, 12, "layers.3", strata::Rgb{0, 0, 0}, /*scale=*/2);
//   img.save_png("out.png");
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace strata {

/// An 8-bit RGB colour.
struct Rgb {
  uint8_t r = 0, g = 0, b = 0;
};

/// An RGB raster with simple drawing primitives; (0, 0) is the top-left pixel.
class Image {
 public:
  /// A width × height image filled with `background`. Sizes must be positive (strata::Error).
  Image(int64_t width, int64_t height, Rgb background = Rgb{255, 255, 255});
  int64_t width() const { return width_; }
  int64_t height() const { return height_; }
  /// The pixel at (x, y); out-of-range coordinates throw strata::Error.
  Rgb at(int64_t x, int64_t y) const;
  /// Sets one pixel; coordinates outside the image are ignored (drawing is clipped).
  void set(int64_t x, int64_t y, Rgb c);
  /// Fills a rectangle (clipped).
  void fill_rect(int64_t x, int64_t y, int64_t w, int64_t h, Rgb c);
  /// Draws a 1-pixel (or `thickness`) line between two points, both included (clipped).
  void draw_line(int64_t x0, int64_t y0, int64_t x1, int64_t y1, Rgb c, int thickness = 1);
  /// Draws printable ASCII text with its top-left corner at (x, y); anything else is drawn as '?'
  /// (one '?' per UTF-8 character, so a multi-byte token shows as a single '?').
  /// Each glyph is `text_width(1)` by `text_height(1)` pixels times `scale`.
  void draw_text(int64_t x, int64_t y, const std::string& text, Rgb c, int scale = 1);
  /// Draws `text` turned a quarter left, reading upwards (an axis title, a column label), into
  /// the box at (x, y) that is `text_height(scale)` wide and `text_width(text, scale)` tall.
  void draw_text_upwards(int64_t x, int64_t y, const std::string& text, Rgb c, int scale = 1);
  /// Width in pixels of `text` drawn at `scale`.
  static int64_t text_width(const std::string& text, int scale = 1);
  /// Height in pixels of one line of text at `scale`.
  static int64_t text_height(int scale = 1);
  /// Writes the image as a PNG file (errors name the path).
  void save_png(const std::string& path) const;
  /// Encodes the image as PNG bytes.
  std::string to_png() const;
  /// Raw RGB bytes, row-major, 3 per pixel.
  const std::vector<uint8_t>& pixels() const { return pixels_; }

 private:
  int64_t width_, height_;
  std::vector<uint8_t> pixels_;
};

}  // namespace strata
