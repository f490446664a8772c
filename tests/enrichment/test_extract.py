"""Main-text extraction from a realistic article page with boilerplate."""

from __future__ import annotations

from enrichment.extract import extract_article

ARTICLE_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>City council passes 2027 budget after marathon session | Riverside Gazette</title>
  <meta property="og:title" content="City council passes 2027 budget after marathon session">
  <script>window.dataLayer = [{"page": "article"}];</script>
</head>
<body>
  <header class="site-header">
    <nav><ul><li><a href="/">Home</a></li><li><a href="/news">News</a></li><li><a href="/sport">Sport</a></li>
    <li><a href="/subscribe">Subscribe today and save 50%</a></li></ul></nav>
  </header>
  <aside class="ad">Advertisement: Buy the new SuperPhone now, limited offer!</aside>
  <main>
    <article>
      <h1>City council passes 2027 budget after marathon session</h1>
      <p class="byline">By Jane Doe, 12 November 2026</p>
      <p>The Riverside city council approved a 412 million dollar budget for 2027 early on Tuesday,
      after a session that lasted more than eleven hours and drew hundreds of residents to city hall.</p>
      <p>The budget raises spending on public libraries by eight percent and funds two new childcare
      centres in the northern districts, a promise the mayor made during last year's campaign.</p>
      <p>Opposition members criticised the plan's reliance on reserve funds, warning that the city
      could face a shortfall in 2029 if property tax revenue does not recover as projected.</p>
      <p>The council will publish the full line-item budget on its website next week, and residents
      can comment on the capital projects until the end of December.</p>
    </article>
    <section class="comments"><h2>Comments</h2><p>Great news!!! Visit my site for cheap watches</p></section>
  </main>
  <aside class="related"><h3>Most read</h3><ul><li><a href="/x">Ten celebrities you won't believe</a></li></ul></aside>
  <footer><p>Copyright 2026 Riverside Gazette. All rights reserved. Privacy policy. Cookie settings.</p></footer>
</body>
</html>"""


def test_article_text_is_extracted_without_boilerplate():
    extracted = extract_article(ARTICLE_PAGE, url="https://gazette.example/news/budget")
    assert "412 million dollar budget" in extracted.text
    assert "two new childcare" in extracted.text
    for boilerplate in ("Subscribe today", "SuperPhone", "cheap watches", "celebrities", "All rights reserved"):
        assert boilerplate not in extracted.text


def test_article_title_is_kept():
    extracted = extract_article(ARTICLE_PAGE, url="https://gazette.example/news/budget")
    assert extracted.title.startswith("City council passes 2027 budget")


def test_page_without_main_text_still_yields_its_title():
    extracted = extract_article("<html><head><title>Just a title</title></head><body></body></html>")
    assert extracted.title == "Just a title"
    assert extracted.text == ""
