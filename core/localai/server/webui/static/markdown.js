/* A small Markdown subset rendered straight into DOM nodes.
 *
 * Model output never becomes HTML: every piece of text lands in a text node (textContent), and links keep
 * only http(s) and mailto hrefs. Supported: paragraphs, headings, fenced code blocks (with a copy button),
 * inline code, bold, italic, strikethrough, bullet and numbered lists, block quotes, rules, links, autolinks.
 */
(function () {
  'use strict';

  function safeHref(url) {
    try {
      const u = new URL(url);
      return ['http:', 'https:', 'mailto:'].includes(u.protocol) ? u.href : null;
    } catch (e) {
      return null;
    }
  }

  async function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      try { await navigator.clipboard.writeText(text); return true; } catch (e) { /* fall back below */ }
    }
    const area = document.createElement('textarea');
    area.value = text;
    area.setAttribute('readonly', '');
    area.style.position = 'fixed';
    area.style.opacity = '0';
    document.body.appendChild(area);
    area.select();
    let ok = false;
    try { ok = document.execCommand('copy'); } catch (e) { ok = false; }
    area.remove();
    return ok;
  }

  function copyButton(getText, label) {
    const b = document.createElement('button');
    b.type = 'button';
    b.className = 'copy';
    b.textContent = 'Copy';
    b.setAttribute('aria-label', label || 'Copy');
    b.addEventListener('click', async () => {
      const ok = await copyText(getText());
      b.textContent = ok ? 'Copied' : 'Copy failed';
      setTimeout(() => { b.textContent = 'Copy'; }, 1500);
    });
    return b;
  }

  // Inline spans, earliest match first. Groups: 1 code, 2 bold**, 3 bold__, 4 strike, 5 italic*, 6 italic_,
  // 7-8 link text/url, 9 autolink.
  const INLINE = new RegExp([
    '`([^`\\n]+)`',
    '\\*\\*(?=\\S)([\\s\\S]+?)\\*\\*',
    '__(?=\\S)([\\s\\S]+?)__',
    '~~(?=\\S)([\\s\\S]+?)~~',
    '\\*(?=[^\\s*])([^*\\n]+?)\\*',
    '(?<![\\w])_(?=[^\\s_])([^_\\n]+?)_(?![\\w])',
    '\\[([^\\]\\n]+)\\]\\(\\s*<?([^)\\s>]+)>?(?:\\s+"[^"\\n]*")?\\s*\\)',
    '(https?:\\/\\/[^\\s<>"\']*[^\\s<>"\'.,;:!?)\\]])',
  ].join('|'), 'g');

  function inline(text, parent) {
    let last = 0;
    INLINE.lastIndex = 0;
    const re = new RegExp(INLINE.source, 'g');
    let m;
    while ((m = re.exec(text)) !== null) {
      if (m.index > last) parent.appendChild(document.createTextNode(text.slice(last, m.index)));
      last = re.lastIndex;
      let node;
      if (m[1] !== undefined) {
        node = document.createElement('code');
        node.textContent = m[1];
      } else if (m[2] !== undefined || m[3] !== undefined) {
        node = document.createElement('strong');
        inline(m[2] !== undefined ? m[2] : m[3], node);
      } else if (m[4] !== undefined) {
        node = document.createElement('del');
        inline(m[4], node);
      } else if (m[5] !== undefined || m[6] !== undefined) {
        node = document.createElement('em');
        inline(m[5] !== undefined ? m[5] : m[6], node);
      } else {
        const label = m[7] !== undefined ? m[7] : m[9];
        const href = safeHref(m[7] !== undefined ? m[8] : m[9]);
        if (href === null) {
          node = document.createTextNode(m[0]);
        } else {
          node = document.createElement('a');
          node.href = href;
          node.target = '_blank';
          node.rel = 'noopener noreferrer nofollow';
          inline(label, node);
        }
      }
      parent.appendChild(node);
    }
    if (last < text.length) parent.appendChild(document.createTextNode(text.slice(last)));
    return parent;
  }

  function paragraph(lines, parent) {
    const p = document.createElement('p');
    lines.forEach((line, i) => {
      if (i) p.appendChild(document.createElement('br'));
      inline(line, p);
    });
    parent.appendChild(p);
  }

  function codeBlock(lang, code, parent) {
    const box = document.createElement('div');
    box.className = 'codeblock';
    const bar = document.createElement('div');
    bar.className = 'codebar';
    const name = document.createElement('span');
    name.textContent = lang || 'code';
    bar.appendChild(name);
    bar.appendChild(copyButton(() => code, 'Copy code'));
    const pre = document.createElement('pre');
    const el = document.createElement('code');
    el.textContent = code;
    pre.appendChild(el);
    box.appendChild(bar);
    box.appendChild(pre);
    parent.appendChild(box);
  }

  const FENCE = /^\s{0,3}(```+|~~~+)\s*([\w+#.-]*)/;
  const HEADING = /^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$/;
  const BULLET = /^(\s*)([-*+])\s+(.*)$/;
  const NUMBER = /^(\s*)(\d{1,9})[.)]\s+(.*)$/;
  const QUOTE = /^\s{0,3}>\s?(.*)$/;
  const RULE = /^\s{0,3}([-*_])(\s*\1){2,}\s*$/;

  function blocks(lines, parent) {
    let i = 0;
    let para = [];
    const flush = () => { if (para.length) { paragraph(para, parent); para = []; } };
    while (i < lines.length) {
      const line = lines[i];
      let m;
      if ((m = FENCE.exec(line))) {
        flush();
        const fence = m[1];
        const body = [];
        i++;
        while (i < lines.length && !lines[i].trim().startsWith(fence)) body.push(lines[i++]);
        i++; // the closing fence (absent while a stream is still writing the block)
        codeBlock(m[2], body.join('\n'), parent);
        continue;
      }
      if (!line.trim()) { flush(); i++; continue; }
      if (RULE.test(line)) { flush(); parent.appendChild(document.createElement('hr')); i++; continue; }
      if ((m = HEADING.exec(line))) {
        flush();
        const h = document.createElement('h' + Math.min(6, m[1].length + 2));
        inline(m[2], h);
        parent.appendChild(h);
        i++;
        continue;
      }
      if (QUOTE.test(line)) {
        flush();
        const inner = [];
        while (i < lines.length && (m = QUOTE.exec(lines[i]))) { inner.push(m[1]); i++; }
        const q = document.createElement('blockquote');
        blocks(inner, q);
        parent.appendChild(q);
        continue;
      }
      if (BULLET.test(line) || NUMBER.test(line)) {
        flush();
        i = list(lines, i, parent);
        continue;
      }
      para.push(line);
      i++;
    }
    flush();
  }

  function list(lines, i, parent) {
    const first = BULLET.exec(lines[i]) || NUMBER.exec(lines[i]);
    const ordered = !BULLET.test(lines[i]);
    const indent = first[1].length;
    const el = document.createElement(ordered ? 'ol' : 'ul');
    if (ordered && first[2] !== '1') el.start = parseInt(first[2], 10);
    let item = null;
    let body = [];
    const close = () => { if (item) { blocks(body, item); el.appendChild(item); } };
    while (i < lines.length) {
      const line = lines[i];
      const m = (ordered ? NUMBER : BULLET).exec(line);
      if (m && m[1].length === indent) {
        close();
        item = document.createElement('li');
        body = [m[3]];
      } else if (line.trim() && (/^\s/.test(line) && line.search(/\S/) > indent)) {
        body.push(line.slice(Math.min(line.search(/\S/), indent + 2)));
      } else if (!line.trim() && i + 1 < lines.length && /^\s+\S/.test(lines[i + 1]) && lines[i + 1].search(/\S/) > indent) {
        body.push('');
      } else {
        break;
      }
      i++;
    }
    close();
    parent.appendChild(el);
    return i;
  }

  function render(text) {
    const frag = document.createDocumentFragment();
    blocks(String(text || '').replace(/\r\n?/g, '\n').split('\n'), frag);
    return frag;
  }

  window.Markdown = { render, inline, safeHref, copyText, copyButton };
})();
