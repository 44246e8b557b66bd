/* The segment builder: a tree of AND / OR groups (each may be negated) of conditions over the filter language's
 * fields (crm.services.segments.segment_fields, embedded in the page as JSON). The definition is kept in the form's
 * hidden field; each change is counted by POST /api/segments/preview/ (debounced, session + CSRF), and an error the
 * service names by path (e.g. "segment.all[1].value") is shown at that condition.
 * No dependencies: plain DOM, so it needs nothing from a CDN. Every word comes translated from the page. */
(function () {
  "use strict";

  const root = document.querySelector("[data-segment-builder]");
  if (!root) return;

  const readJson = (id) => JSON.parse(document.getElementById(id).textContent);
  const T = readJson("segment-builder-strings");
  const input = document.getElementById(root.dataset.input);
  const readOnly = root.dataset.readonly === "true";
  const INPUT_CLASS = root.dataset.inputClass || "";
  const DEBOUNCE_MS = 350;
  let FIELDS = {};
  let ORDER = [];

  // --- the catalogue ------------------------------------------------------------------------------------------
  function setCatalogue(list) {
    FIELDS = {};
    ORDER = [];
    (list || []).forEach((f) => {
      const name = f.name || f.field;
      const ops = (f.ops || []).map((o) =>
        typeof o === "string" ? { op: o, label: T.ops[o] || o } : { op: o.op || o.value, label: o.label || T.ops[o.op] || o.op });
      const choices = f.choices == null ? null : f.choices.map((c) =>
        Array.isArray(c) ? { value: c[0], label: String(c[1]) }
          : (c !== null && typeof c === "object") ? { value: c.value !== undefined ? c.value : c.id, label: String(c.label || c.name || c.value) }
            : { value: c, label: String(c) });
      const kind = kindOf(f, name);
      let label = String(f.label || name);
      if (kind === "fen") label = label.replace(/\s*[(（]\s*(fen|分)\s*[)）]\s*$/i, "");
      FIELDS[name] = { name, label, kind, ops, choices, extra: f.extra || [],
                       help: f.help || "", raw: f };
      ORDER.push(name);
    });
  }

  // The value widget a field needs, from its kind (and, for an older catalogue, its name).
  function kindOf(f, name) {
    const k = String(f.kind || f.value_kind || "").toLowerCase();
    const synonyms = {
      ids: "multi", strings: "multi", multi: "multi", list: "multi", choices: "multi",
      choice: "choice", purpose: "choice", enum: "choice",
      bool: "bool", boolean: "bool", true: "bool",
      date: "date", day: "date",
      int: "number", integer: "number", number: "number", points: "number",
      fen: "fen", money: "fen", yuan: "fen",
      bought: "bought", products: "bought", skus: "bought",
    };
    // "amount": a whole number; spend's is money in fen, entered in yuan.
    if (k === "amount") return name === "spend" || f.unit === "fen" ? "fen" : "number";
    if (synonyms[k]) return synonyms[k];
    const byName = { tags: "multi", tier: "multi", channel: "multi", staff: "multi", group: "multi", source: "multi",
                     segment: "multi", points: "number", spend: "fen", last_purchase: "date", added: "date",
                     bought: "bought", vip_group: "bool", consent: "choice" };
    return byName[name] || "text";
  }

  const hasDays = (field) => field && (field.extra.indexOf("days") >= 0 || ["spend", "bought"].indexOf(field.name) >= 0);
  // Spend's window defaults to 90 days (as the service's); bought has none unless one is given.
  const defaultDays = (field) => (field && field.name === "spend" ? 90 : undefined);

  // --- the model: {kind: "group", op, not, children} | {kind: "cond", field, op, value, days, not} | raw ---------
  const group = (op, children) => ({ kind: "group", op: op || "all", not: false, children: children || [] });

  function parse(def) {
    if (def === null || typeof def !== "object" || Array.isArray(def)) return { kind: "raw", not: false, def };
    const keys = Object.keys(def);
    if (keys.length === 0) return group("all");
    if ("not" in def && keys.length === 1) {
      const node = parse(def.not);
      node.not = !node.not;
      return node;
    }
    if (("all" in def || "any" in def) && keys.length === 1) {
      const op = "all" in def ? "all" : "any";
      return group(op, (Array.isArray(def[op]) ? def[op] : []).map(parse));
    }
    if ("field" in def) {
      const node = { kind: "cond", not: false, field: def.field, op: def.op, value: def.value, days: def.days };
      node.rest = {};  // extra keys the builder does not know are kept as they are
      keys.forEach((k) => { if (["field", "op", "value", "days"].indexOf(k) < 0) node.rest[k] = def[k]; });
      return node;
    }
    return { kind: "raw", not: false, def };  // the old flat shape: the service converts it on save
  }

  function join(path, part) { return path ? (part.charAt(0) === "[" ? path + part : path + "." + part) : part; }

  // The definition, and a map path -> model node (for errors), with the same paths the service names.
  function serialise(node, path, map) {
    map[path] = node;
    const innerPath = node.not ? join(path, "not") : path;
    if (node.not) map[innerPath] = node;
    let inner;
    if (node.kind === "group") {
      inner = {};
      inner[node.op] = node.children.map((child, i) => serialise(child, join(innerPath, node.op + "[" + i + "]"), map));
    } else if (node.kind === "cond") {
      inner = Object.assign({ field: node.field, op: node.op, value: node.value === undefined ? null : node.value }, node.rest || {});
      if (hasDays(FIELDS[node.field]) && node.days !== undefined && node.days !== null && node.days !== "") inner.days = node.days;
    } else {
      inner = node.def;
    }
    return node.not ? { not: inner } : inner;
  }

  function defaultValue(field, op) {
    if (!field) return null;
    switch (field.kind) {
      case "multi": return [];
      case "bool": return true;
      case "choice": return field.choices && field.choices.length ? field.choices[0].value : "";
      case "bought": return { skus: [], categories: [] };
      case "date": return op === "between" ? ["", ""] : "";
      default: return op === "between" ? [null, null] : null;
    }
  }

  function newCondition() {
    const name = ORDER.indexOf("tags") >= 0 ? "tags" : ORDER[0];
    const field = FIELDS[name];
    const op = field && field.ops.length ? field.ops[0].op : "";
    const node = { kind: "cond", not: false, field: name, op, value: defaultValue(field, op), rest: {} };
    if (hasDays(field)) node.days = defaultDays(field);
    return node;
  }

  // --- rendering ----------------------------------------------------------------------------------------------
  let tree;
  let pathMap = {};

  function el(tag, attrs, children) {
    const e = document.createElement(tag);
    Object.entries(attrs || {}).forEach(([k, v]) => {
      if (v === undefined || v === null || v === false) return;
      if (k === "text") e.textContent = v;
      else if (k === "class") e.className = v;
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? "" : v);
    });
    (children || []).forEach((c) => c && e.appendChild(typeof c === "string" ? document.createTextNode(c) : c));
    if (readOnly && /^(INPUT|SELECT|BUTTON|TEXTAREA)$/.test(tag.toUpperCase())) e.disabled = true;
    return e;
  }

  const button = (text, onclick, extra) => el("button", Object.assign({ type: "button", class: "sb-btn", text, onclick }, extra || {}));

  function notToggle(node) {
    const box = el("input", { type: "checkbox", "data-testid": "sb-not", onchange: (e) => { node.not = e.target.checked; changed(true); } });
    box.checked = !!node.not;
    return el("label", { class: "sb-not" + (node.not ? " sb-not-on" : ""), title: T.not_title }, [box, T.not]);
  }

  function renderGroup(node, parent, isRoot) {
    const header = el("div", { class: "sb-group-head" }, [
      notToggle(node),
      (() => {
        const s = el("select", { class: INPUT_CLASS + " sb-group-op", "data-testid": "sb-group-op",
                                 onchange: (e) => { node.op = e.target.value; changed(true); } },
          ["all", "any"].map((op) => el("option", { value: op, text: T[op] })));
        s.value = node.op;
        return s;
      })(),
      el("span", { class: "sb-spacer" }),
      isRoot ? null : button("✕", () => { remove(parent, node); }, { title: T.remove, "aria-label": T.remove, "data-testid": "sb-remove" }),
    ]);
    const body = el("div", { class: "sb-children" });
    if (!node.children.length) body.appendChild(el("p", { class: "sb-empty text-subtle", text: T.empty_group }));
    node.children.forEach((child) => body.appendChild(renderNode(child, node)));
    const foot = readOnly ? null : el("div", { class: "sb-group-foot" }, [
      button("+ " + T.add_condition, () => { node.children.push(newCondition()); changed(true); }, { "data-testid": "sb-add-condition" }),
      button("+ " + T.add_group, () => { node.children.push(group(node.op === "all" ? "any" : "all", [newCondition()])); changed(true); },
             { "data-testid": "sb-add-group" }),
    ]);
    const box = el("div", { class: "sb-group sb-group-" + node.op + (node.not ? " sb-negated" : ""), "data-testid": "sb-group" },
                   [header, body, foot, el("p", { class: "sb-error", "data-testid": "sb-error", role: "alert" })]);
    node.el = box;
    return box;
  }

  function renderNode(node, parent) {
    if (node.kind === "group") return renderGroup(node, parent, false);
    if (node.kind === "raw") {
      const box = el("div", { class: "sb-cond", "data-testid": "sb-condition" }, [
        notToggle(node), el("code", { class: "sb-raw", text: JSON.stringify(node.def) }),
        readOnly ? null : button("✕", () => remove(parent, node), { title: T.remove, "data-testid": "sb-remove" }),
        el("p", { class: "sb-error", "data-testid": "sb-error", role: "alert" }),
      ]);
      node.el = box;
      return box;
    }
    return renderCondition(node, parent);
  }

  function renderCondition(node, parent) {
    const field = FIELDS[node.field];
    const fieldSelect = el("select", { class: INPUT_CLASS + " sb-field", "data-testid": "sb-field", "aria-label": T.field,
      onchange: (e) => {
        const f = FIELDS[e.target.value];
        node.field = f.name;
        node.op = f.ops.length ? f.ops[0].op : "";
        node.value = defaultValue(f, node.op);
        node.days = hasDays(f) ? defaultDays(f) : undefined;
        node.rest = {};
        changed(true);
      } }, ORDER.map((name) => el("option", { value: name, text: FIELDS[name].label })));
    if (!field) fieldSelect.appendChild(el("option", { value: node.field, text: node.field }));
    fieldSelect.value = node.field;

    const opSelect = el("select", { class: INPUT_CLASS + " sb-op", "data-testid": "sb-op", "aria-label": T.operator,
      onchange: (e) => {
        const was = node.op;
        node.op = e.target.value;
        if ((was === "between") !== (node.op === "between")) node.value = defaultValue(field, node.op);
        changed(true);
      } }, (field ? field.ops : [{ op: node.op, label: T.ops[node.op] || node.op }]).map((o) => el("option", { value: o.op, text: o.label })));
    opSelect.value = node.op;

    const parts = [notToggle(node), fieldSelect, opSelect, el("span", { class: "sb-value", "data-testid": "sb-value" }, [valueWidget(node, field)])];
    if (hasDays(field)) {
      const days = el("input", { type: "number", min: "1", step: "1", class: INPUT_CLASS + " sb-days", "data-testid": "sb-days",
        oninput: (e) => { node.days = e.target.value === "" ? undefined : parseInt(e.target.value, 10); changed(false); } });
      days.value = node.days === undefined || node.days === null ? "" : node.days;
      parts.push(el("span", { class: "sb-days-box" }, [T.days_before, days, T.days_after]));
    }
    parts.push(el("span", { class: "sb-spacer" }));
    if (!readOnly) parts.push(button("✕", () => remove(parent, node), { title: T.remove, "aria-label": T.remove, "data-testid": "sb-remove" }));
    const box = el("div", { class: "sb-cond" + (node.not ? " sb-negated" : ""), "data-testid": "sb-condition", "data-field": node.field }, [
      el("div", { class: "sb-cond-row" }, parts),
      field && field.help ? el("p", { class: "sb-help text-subtle", text: field.help }) : null,
      field ? null : el("p", { class: "sb-help text-subtle", text: T.unknown_field }),
      el("p", { class: "sb-error", "data-testid": "sb-error", role: "alert" }),
    ]);
    node.el = box;
    return box;
  }

  const yuanToFen = (s) => (s === "" || s === null || isNaN(Number(s)) ? null : Math.round(Number(s) * 100));
  const fenToYuan = (f) => (f === null || f === undefined || f === "" ? "" : (Number(f) / 100).toString());
  const toInt = (s) => (s === "" || isNaN(Number(s)) ? null : Number(s));

  // One input (or two for "between") of the given type, converting to and from the wire value.
  function scalarInputs(node, type, toWire, fromWire, extra) {
    const make = (index) => {
      const attrs = Object.assign({ type, class: INPUT_CLASS + " sb-input", "data-testid": "sb-input" }, extra || {});
      const i = el("input", attrs);
      const current = index === null ? node.value : (Array.isArray(node.value) ? node.value[index] : null);
      i.value = fromWire(current);
      i.addEventListener(type === "date" ? "change" : "input", () => {
        const v = toWire(i.value);
        if (index === null) node.value = v;
        else {
          if (!Array.isArray(node.value)) node.value = [null, null];
          node.value[index] = v;
        }
        changed(false);
      });
      return i;
    };
    if (node.op === "between") return el("span", { class: "sb-range" }, [T.from, make(0), T.to, make(1)]);
    return make(null);
  }

  function multiSelect(node, choices, testid) {
    const selected = new Set((Array.isArray(node.value) ? node.value : [node.value]).map(String));
    const s = el("select", { multiple: true, class: INPUT_CLASS + " sb-multi", "data-testid": testid || "sb-multi",
                             size: String(Math.min(6, Math.max(3, choices.length))), "aria-label": T.value });
    // Options carry the value as text; the wire value keeps its type (tag ids are numbers, userids strings).
    const byText = new Map(choices.map((c) => [String(c.value), c.value]));
    choices.forEach((c) => {
      const o = el("option", { value: String(c.value), text: c.label });
      o.selected = selected.has(String(c.value));
      s.appendChild(o);
    });
    s.addEventListener("change", () => {
      node.value = Array.from(s.selectedOptions).map((o) => byText.get(o.value));
      changed(false);
    });
    return s;
  }

  const splitList = (s) => s.split(/[,，\s]+/).map((x) => x.trim()).filter(Boolean);

  function valueWidget(node, field) {
    if (!field) return el("code", { class: "sb-raw", text: JSON.stringify(node.value) });
    switch (field.kind) {
      case "multi":
        if (field.choices) return el("span", { class: "sb-sub" }, [multiSelect(node, field.choices), el("span", { class: "text-xs text-subtle", text: T.multi_hint })]);
        return (() => {
          const ints = field.raw.kind === "ids";
          const i = el("input", { type: "text", class: INPUT_CLASS + " sb-input", "data-testid": "sb-input" });
          i.value = Array.isArray(node.value) ? node.value.join(", ") : "";
          i.addEventListener("input", () => { node.value = splitList(i.value).map((x) => (ints ? Number(x) : x)); changed(false); });
          return i;
        })();
      case "choice": {
        const s = el("select", { class: INPUT_CLASS + " sb-choice", "data-testid": "sb-choice", "aria-label": T.value },
          [el("option", { value: "", text: T.choose })].concat((field.choices || []).map((c) => el("option", { value: String(c.value), text: c.label }))));
        const byText = new Map((field.choices || []).map((c) => [String(c.value), c.value]));
        s.value = byText.has(String(node.value)) ? String(node.value) : "";
        s.addEventListener("change", () => { node.value = s.value === "" ? "" : byText.get(s.value); changed(false); });
        return s;
      }
      case "bool":
        node.value = true;
        return el("span", { class: "sb-bool", text: T.yes });
      case "date":
        return scalarInputs(node, "date", (s) => s, (v) => v || "");
      case "number":
        return scalarInputs(node, "number", toInt, (v) => (v === null || v === undefined ? "" : v), { step: "1", min: "0" });
      case "fen":
        return el("span", { class: "sb-money" }, [scalarInputs(node, "number", yuanToFen, fenToYuan, { step: "0.01", min: "0" }), T.yuan]);
      case "bought": {
        const v = node.value && typeof node.value === "object" && !Array.isArray(node.value) ? node.value : { skus: [], categories: [] };
        node.value = v;
        const parts = [];
        const categories = field.raw.categories || (field.choices && field.choices.length ? field.choices : null);
        if (categories) {
          // multiSelect writes holder.value, which is the condition's categories (set before it re-serialises).
          const holder = { get value() { return v.categories || []; }, set value(x) { v.categories = x; } };
          const s = multiSelect(holder, categories.map((c) => (typeof c === "object" ? c : { value: c, label: String(c) })), "sb-categories");
          parts.push(el("label", { class: "sb-sub" }, [T.categories, s]));
        }
        const skus = el("input", { type: "text", class: INPUT_CLASS + " sb-input", "data-testid": "sb-skus" });
        skus.value = (v.skus || []).join(", ");
        skus.addEventListener("input", () => { v.skus = splitList(skus.value); changed(false); });
        parts.push(el("label", { class: "sb-sub" }, [T.skus, skus]));
        return el("span", { class: "sb-bought" }, parts);
      }
      default: {
        const i = el("input", { type: "text", class: INPUT_CLASS + " sb-input", "data-testid": "sb-input" });
        i.value = node.value === null || node.value === undefined ? "" : (typeof node.value === "string" ? node.value : JSON.stringify(node.value));
        i.addEventListener("input", () => {
          try { node.value = JSON.parse(i.value); } catch (e) { node.value = i.value; }
          changed(false);
        });
        return i;
      }
    }
  }

  function remove(parent, node) {
    parent.children.splice(parent.children.indexOf(node), 1);
    changed(true);
  }

  const treeBox = root.querySelector("[data-sb-tree]");
  function render() {
    treeBox.replaceChildren(renderGroup(tree, null, true));
  }

  // --- errors -------------------------------------------------------------------------------------------------
  const topError = root.querySelector("[data-sb-top-error]");

  function clearErrors() {
    root.querySelectorAll(".sb-invalid").forEach((e) => e.classList.remove("sb-invalid"));
    root.querySelectorAll(".sb-error").forEach((e) => { e.textContent = ""; });
    if (topError) topError.textContent = "";
  }

  // "segment.all[1].not.value" -> the node at "all[1].not" (the longest known prefix), its own error line.
  function showError(path, message) {
    let rest = String(path || "");
    const head = rest.match(/^[A-Za-z_]+/);
    if (head && !/^(all|any|not)$/.test(head[0])) rest = rest.slice(head[0].length).replace(/^\./, "");
    let node = null;
    let probe = rest;
    while (true) {
      if (Object.prototype.hasOwnProperty.call(pathMap, probe)) { node = pathMap[probe]; break; }
      if (!probe) break;
      const cut = Math.max(probe.lastIndexOf("."), probe.lastIndexOf("["));
      probe = cut > 0 ? probe.slice(0, cut) : "";
    }
    if (!node || node === tree || !node.el) {
      if (topError) topError.textContent = message;
      if (tree.el) tree.el.classList.add("sb-invalid");
      return;
    }
    node.el.classList.add("sb-invalid");
    const line = node.el.querySelector(":scope > .sb-error");
    if (line) line.textContent = message;
    node.el.setAttribute("data-error-path", path);
  }

  // --- preview ------------------------------------------------------------------------------------------------
  const countEl = root.querySelector("[data-sb-count]");
  const statusEl = root.querySelector("[data-sb-status]");
  const sampleEl = root.querySelector("[data-sb-sample]");
  const previewUrl = root.dataset.previewUrl;
  const contactUrl = root.dataset.contactUrl;
  let timer = null;
  let seq = 0;
  // A refusal of the last save (e.g. a saved segment referring to this one) stays shown until the definition changes.
  let serverError = root.dataset.errorMessage ? { path: root.dataset.errorPath, message: root.dataset.errorMessage } : null;

  function csrfToken() {
    const field = document.querySelector("input[name=csrfmiddlewaretoken]");
    if (field) return field.value;
    const m = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return m ? decodeURIComponent(m[1]) : "";
  }

  function setStatus(text, state) {
    statusEl.textContent = text || "";
    root.dataset.previewState = state;
  }

  // Each change takes a number; only the answer for the latest one is shown (an older one in flight is dropped).
  function schedulePreview() {
    clearTimeout(timer);
    setStatus(T.counting, "loading");
    const mine = ++seq;
    timer = setTimeout(() => preview(mine), DEBOUNCE_MS);
  }

  async function preview(mine) {
    const definition = JSON.parse(input.value || "{}");
    let response, body;
    try {
      response = await fetch(previewUrl, {
        method: "POST", credentials: "same-origin",
        headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": csrfToken() },
        body: JSON.stringify({ definition }),
      });
      body = await response.json().catch(() => ({}));
    } catch (e) {
      if (mine === seq) setStatus(T.count_failed, "failed");
      return;
    }
    if (mine !== seq) return;  // a newer definition is being counted
    clearErrors();
    if (serverError) showError(serverError.path, serverError.message);
    if (!response.ok) {
      const err = (body && body.error) || {};
      if (response.status === 400) {
        showError(err.field, err.message || T.fix_condition);
        countEl.textContent = "—";
        countEl.dataset.count = "";
        sampleEl.replaceChildren();
        setStatus(T.fix_condition, "invalid");
      } else {
        setStatus(err.message || T.count_failed, "failed");
      }
      return;
    }
    countEl.textContent = Number(body.count).toLocaleString();
    countEl.dataset.count = String(body.count);
    sampleEl.replaceChildren();
    (body.sample || []).forEach((c) => {
      const href = contactUrl.replace("{id}", encodeURIComponent(c.id));
      sampleEl.appendChild(el("li", { class: "sb-sample-row", "data-testid": "sb-sample-row", "data-contact-id": c.id }, [
        el("a", { href, class: "text-primary-600 dark:text-primary-500", text: c.name || c.external_userid }),
        el("span", { class: "text-xs text-subtle cp-mono", text: c.external_userid }),
      ]));
    });
    if (!(body.sample || []).length) sampleEl.appendChild(el("li", { class: "text-subtle", text: T.no_sample }));
    setStatus("", "ready");
  }

  // --- wiring -------------------------------------------------------------------------------------------------
  function changed(structure) {
    serverError = null;
    pathMap = {};
    input.value = JSON.stringify(serialise(tree, "", pathMap));
    if (structure) {
      render();
      pathMap = {};
      input.value = JSON.stringify(serialise(tree, "", pathMap));
    }
    schedulePreview();
  }

  async function start() {
    const embedded = document.getElementById("segment-fields");
    if (embedded) setCatalogue(JSON.parse(embedded.textContent));
    else {
      const r = await fetch(root.dataset.fieldsUrl, { credentials: "same-origin", headers: { Accept: "application/json" } });
      const data = await r.json();
      setCatalogue(Array.isArray(data) ? data : data.fields);
    }
    let def = {};
    try { def = JSON.parse(input.value || "{}"); } catch (e) { def = {}; }
    tree = parse(def);
    if (tree.kind !== "group" || tree.not) tree = group("all", [tree]);
    render();
    pathMap = {};
    input.value = JSON.stringify(serialise(tree, "", pathMap));
    if (serverError) showError(serverError.path, serverError.message);
    root.dataset.ready = "true";
    setStatus(T.counting, "loading");
    preview(++seq);
  }

  start();
})();
