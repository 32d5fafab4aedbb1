#include <strata/report/image.h>

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <iterator>
#include <set>
#include <string>

#include <strata/core/error.h>

#define STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_STATIC
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#endif
#include <stb/stb_image.h>
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

namespace strata {
namespace {

constexpr Rgb kWhite{255, 255, 255};
constexpr Rgb kRed{200, 30, 30};

bool same(Rgb a, Rgb b) { return a.r == b.r && a.g == b.g && a.b == b.b; }

int64_t count(const Image& img, Rgb c) {
  int64_t n = 0;
  for (int64_t y = 0; y < img.height(); ++y)
    for (int64_t x = 0; x < img.width(); ++x) n += same(img.at(x, y), c);
  return n;
}

TEST(Image, StartsFilledWithTheBackground) {
  Image img(7, 5, Rgb{1, 2, 3});
  EXPECT_EQ(img.width(), 7);
  EXPECT_EQ(img.height(), 5);
  EXPECT_EQ(img.pixels().size(), 7u * 5u * 3u);
  EXPECT_EQ(count(img, Rgb{1, 2, 3}), 35);
}

TEST(Image, RejectsBadSizesAndCoordinates) {
  EXPECT_THROW(Image(0, 5), Error);
  EXPECT_THROW(Image(5, -1), Error);
  EXPECT_THROW(Image(int64_t{1} << 40, 1), Error);
  Image img(4, 3);
  EXPECT_THROW(img.at(4, 0), Error);
  EXPECT_THROW(img.at(0, -1), Error);
  try {
    img.at(9, 2);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("Image::at: (9, 2)"), std::string::npos) << e.what();
  }
}

TEST(Image, SetIgnoresPixelsOutside) {
  Image img(3, 3);
  img.set(-1, 0, kRed);
  img.set(3, 1, kRed);
  img.set(1, 3, kRed);
  EXPECT_EQ(count(img, kWhite), 9);
  img.set(2, 1, kRed);
  EXPECT_TRUE(same(img.at(2, 1), kRed));
  EXPECT_EQ(img.pixels()[(1 * 3 + 2) * 3], 200);  // row-major, 3 bytes per pixel
}

TEST(Image, FillRectCoversExactlyItsPixels) {
  Image img(10, 8);
  img.fill_rect(2, 3, 4, 2, kRed);
  for (int64_t y = 0; y < 8; ++y)
    for (int64_t x = 0; x < 10; ++x) {
      const bool inside = x >= 2 && x < 6 && y >= 3 && y < 5;
      EXPECT_TRUE(same(img.at(x, y), inside ? kRed : kWhite)) << x << "," << y;
    }
}

TEST(Image, FillRectClips) {
  Image img(10, 8);
  img.fill_rect(-3, -2, 5, 4, kRed);  // covers x 0..1, y 0..1
  EXPECT_EQ(count(img, kRed), 4);
  EXPECT_TRUE(same(img.at(1, 1), kRed));
  EXPECT_TRUE(same(img.at(2, 1), kWhite));
  img.fill_rect(8, 6, 100, 100, kRed);  // x 8..9, y 6..7
  EXPECT_EQ(count(img, kRed), 8);
  img.fill_rect(20, 0, 5, 5, kRed);
  img.fill_rect(0, -10, 5, 5, kRed);
  img.fill_rect(0, 0, 0, 5, kRed);
  img.fill_rect(0, 0, 5, -2, kRed);
  EXPECT_EQ(count(img, kRed), 8);
  Image all(4, 4);
  all.fill_rect(INT64_MIN / 2, INT64_MIN / 2, INT64_MAX, INT64_MAX, kRed);
  EXPECT_EQ(count(all, kRed), 16);
}

TEST(Image, DrawLineIncludesBothEndpoints) {
  Image img(10, 10);
  img.draw_line(1, 2, 7, 2, kRed);
  EXPECT_EQ(count(img, kRed), 7);
  for (int64_t x = 1; x <= 7; ++x) EXPECT_TRUE(same(img.at(x, 2), kRed));

  Image v(10, 10);
  v.draw_line(4, 8, 4, 3, kRed);
  EXPECT_EQ(count(v, kRed), 6);
  EXPECT_TRUE(same(v.at(4, 8), kRed));
  EXPECT_TRUE(same(v.at(4, 3), kRed));

  Image d(10, 10);
  d.draw_line(0, 0, 9, 9, kRed);
  EXPECT_EQ(count(d, kRed), 10);
  for (int64_t i = 0; i < 10; ++i) EXPECT_TRUE(same(d.at(i, i), kRed));

  Image steep(10, 10);
  steep.draw_line(8, 1, 2, 7, kRed);
  EXPECT_TRUE(same(steep.at(8, 1), kRed));
  EXPECT_TRUE(same(steep.at(2, 7), kRed));
  EXPECT_EQ(count(steep, kRed), 7);

  Image dot(3, 3);
  dot.draw_line(1, 1, 1, 1, kRed);
  EXPECT_EQ(count(dot, kRed), 1);
}

TEST(Image, DrawLineThicknessAndClipping) {
  Image img(10, 10);
  img.draw_line(2, 5, 6, 5, kRed, 3);  // rows 4..6, x 1..7
  EXPECT_EQ(count(img, kRed), 3 * 7);
  EXPECT_TRUE(same(img.at(1, 4), kRed));
  EXPECT_TRUE(same(img.at(7, 6), kRed));

  Image clip(10, 10);
  clip.draw_line(-5, 3, 20, 3, kRed);
  EXPECT_EQ(count(clip, kRed), 10);
  clip.draw_line(-50, -50, -10, -40, kRed);
  EXPECT_EQ(count(clip, kRed), 10);
  EXPECT_THROW(clip.draw_line(0, 0, 1, 1, kRed, 0), Error);
  EXPECT_THROW(clip.draw_line(0, 0, int64_t{1} << 40, 1, kRed), Error);
}

TEST(Image, TextMetrics) {
  EXPECT_EQ(Image::text_width(""), 0);
  EXPECT_EQ(Image::text_width("A"), 5);
  EXPECT_EQ(Image::text_width("AB"), 11);
  EXPECT_EQ(Image::text_width("AB", 2), 22);
  EXPECT_EQ(Image::text_height(), 8);
  EXPECT_EQ(Image::text_height(3), 24);
  // One '?' per UTF-8 character, and per stray byte.
  EXPECT_EQ(Image::text_width("\xC3\xA9"), 5);                           // é
  EXPECT_EQ(Image::text_width(std::string("a\xE2\x96\x81") + "b"), 17);  // a▁b
  EXPECT_EQ(Image::text_width("\x80\x80"), 11);
  EXPECT_THROW(Image::text_width("x", 0), Error);
  EXPECT_THROW(Image::text_height(-1), Error);
}

// Draws `text` at an offset into a larger image; every inked pixel must lie in the text box.
void expect_ink_inside_box(const std::string& text, int scale) {
  const int64_t x0 = 7, y0 = 5;
  const int64_t w = Image::text_width(text, scale), h = Image::text_height(scale);
  Image img(w + 20, h + 20);
  img.draw_text(x0, y0, text, Rgb{0, 0, 0}, scale);
  int64_t inside = 0, outside = 0;
  for (int64_t y = 0; y < img.height(); ++y)
    for (int64_t x = 0; x < img.width(); ++x) {
      if (same(img.at(x, y), kWhite)) continue;
      const bool in = x >= x0 && x < x0 + w && y >= y0 && y < y0 + h;
      (in ? inside : outside)++;
    }
  EXPECT_GT(inside, 0) << text;
  EXPECT_EQ(outside, 0) << text;
}

TEST(Image, TextStaysInsideItsBox) {
  std::string all;
  for (char c = ' '; c <= '~'; ++c) all.push_back(c);
  for (int scale : {1, 2, 3}) {
    expect_ink_inside_box(all, scale);
    expect_ink_inside_box("Hello, world! gjpqy", scale);
    expect_ink_inside_box("W", scale);
    expect_ink_inside_box("\xE2\x96\x81Lily", scale);
  }
}

TEST(Image, TextTouchesTheBoxEdges) {
  // The box is tight: some glyph reaches each of its four edges (left/right: 'W' columns,
  // top: capitals, bottom: descenders).
  const std::string text = "Wg";
  Image img(Image::text_width(text), Image::text_height(), kWhite);
  img.draw_text(0, 0, text, Rgb{0, 0, 0});
  auto inked = [&](int64_t x, int64_t y) { return !same(img.at(x, y), kWhite); };
  bool left = false, right = false, top = false, bottom = false;
  for (int64_t y = 0; y < img.height(); ++y) {
    left = left || inked(0, y);
    right = right || inked(img.width() - 1, y);
  }
  for (int64_t x = 0; x < img.width(); ++x) {
    top = top || inked(x, 0);
    bottom = bottom || inked(x, img.height() - 1);
  }
  EXPECT_TRUE(left && right && top && bottom);
}

TEST(Image, EveryPrintableGlyphIsDistinct) {
  std::set<std::vector<uint8_t>> seen;
  for (char c = '!'; c <= '~'; ++c) {
    Image img(5, 8);
    img.draw_text(0, 0, std::string(1, c), Rgb{0, 0, 0});
    EXPECT_LT(count(img, kWhite), 40) << "no ink for '" << c << "'";
    EXPECT_TRUE(seen.insert(img.pixels()).second) << "'" << c << "' looks like another glyph";
  }
  Image space(5, 8);
  space.draw_text(0, 0, " ", Rgb{0, 0, 0});
  EXPECT_EQ(count(space, kWhite), 40);
}

TEST(Image, NonAsciiDrawsAsQuestionMark) {
  Image a(5, 8), b(5, 8), c(5, 8);
  a.draw_text(0, 0, "?", Rgb{0, 0, 0});
  b.draw_text(0, 0, "\xC3\xA9", Rgb{0, 0, 0});
  c.draw_text(0, 0, "\t", Rgb{0, 0, 0});
  EXPECT_EQ(a.pixels(), b.pixels());
  EXPECT_EQ(a.pixels(), c.pixels());
}

TEST(Image, ScaledTextIsTheGlyphMagnified) {
  Image one(5, 8), two(10, 16);
  one.draw_text(0, 0, "R", kRed, 1);
  two.draw_text(0, 0, "R", kRed, 2);
  for (int64_t y = 0; y < 16; ++y)
    for (int64_t x = 0; x < 10; ++x)
      EXPECT_TRUE(same(two.at(x, y), one.at(x / 2, y / 2))) << x << "," << y;
}

TEST(Image, TextIsClipped) {
  Image img(8, 8);
  img.draw_text(-3, -3, "MW", kRed, 2);
  img.draw_text(100, 100, "x", kRed);
  EXPECT_GT(count(img, kRed), 0);
}

Image test_pattern() {
  Image img(13, 7, Rgb{10, 20, 30});
  for (int64_t y = 0; y < 7; ++y)
    for (int64_t x = 0; x < 13; ++x)
      img.set(x, y,
              Rgb{static_cast<uint8_t>(x * 19), static_cast<uint8_t>(y * 37),
                  static_cast<uint8_t>((x * y * 7) % 256)});
  img.draw_text(1, 0, "Hi", Rgb{255, 255, 0});
  return img;
}

TEST(Image, PngRoundTripIsExact) {
  const Image img = test_pattern();
  const std::string png = img.to_png();
  ASSERT_GE(png.size(), 8u);
  EXPECT_EQ(png.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
  int w = 0, h = 0, comp = 0;
  unsigned char* data = stbi_load_from_memory(reinterpret_cast<const unsigned char*>(png.data()),
                                              static_cast<int>(png.size()), &w, &h, &comp, 3);
  ASSERT_NE(data, nullptr) << stbi_failure_reason();
  EXPECT_EQ(w, 13);
  EXPECT_EQ(h, 7);
  EXPECT_EQ(comp, 3);
  const std::vector<uint8_t> decoded(data, data + w * h * 3);
  stbi_image_free(data);
  EXPECT_EQ(decoded, img.pixels());
}

TEST(Image, SavePngWritesTheSameBytes) {
  const Image img = test_pattern();
  const std::string path = ::testing::TempDir() + "strata_image_test.png";
  img.save_png(path);
  std::ifstream f(path, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  EXPECT_EQ(bytes, img.to_png());
  std::remove(path.c_str());
}

TEST(Image, SavePngNamesAnUnwritablePath) {
  const std::string path = "/nonexistent-dir/strata/x.png";
  try {
    test_pattern().save_png(path);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("Image::save_png"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace strata
