/* AR Ops keyboard shortcuts and small UI helpers. No dependencies; loaded with `defer`.
 *
 *   /        focus the page's search box
 *   g <key>  go to the nav section whose link has data-nav-key="<key>" (c Clients, w Worklists, s SLAs, ...)
 *   j / k    move the highlighted row in tables marked data-nav-table
 *   Enter    open the first link of the highlighted row
 *   ?        open the shortcut help (<dialog data-help>)
 * On the collector screen ([data-desk]):
 *   1-8, e o t x   pick an outcome (its form shows, the others hide; links to ?outcome=... without JS)
 *   n        next account ([data-next-account]);  a  the full account view ([data-account-link])
 *   Esc      in a field of an outcome form: leave the field, so the keys work again
 *   Escape   close the narrow-screen menu (focus goes back to its button)
 *
 * Pages that follow running work carry <meta name="auto-refresh" content="N">: they reload every N seconds,
 * with a "Pause updates" button (WCAG 2.2.1), and never while someone is typing in a field.
 */
(function () {
  "use strict";

  var doc = document;
  doc.documentElement.classList.add("has-js");

  var PREFIX_TIMEOUT_MS = 1500;
  var pendingG = false;
  var pendingTimer = null;

  function isTyping(target) {
    if (!target || target === doc.body) return false;
    if (target.isContentEditable) return true;
    var tag = target.tagName;
    if (tag === "TEXTAREA" || tag === "SELECT") return true;
    if (tag === "INPUT") {
      var type = (target.getAttribute("type") || "text").toLowerCase();
      return ["checkbox", "radio", "button", "submit", "reset", "image", "file", "range", "color"].indexOf(type) === -1;
    }
    return false;
  }

  function openDialog() {
    var dialog = doc.querySelector("dialog[data-help]");
    if (!dialog || dialog.open) return;
    if (typeof dialog.showModal === "function") {
      dialog.showModal();
    } else {
      dialog.setAttribute("open", "");
    }
  }

  function anyDialogOpen() {
    return !!doc.querySelector("dialog[open]");
  }

  function focusSearch() {
    var box = doc.querySelector("[data-search]") || doc.querySelector('main input[type="search"]');
    if (!box) return false;
    box.focus();
    if (typeof box.select === "function") box.select();
    return true;
  }

  function goToSection(key) {
    var link = doc.querySelector('a[data-nav-key="' + key + '"]');
    if (!link) return false;
    window.location.assign(link.href);
    return true;
  }

  /* ---- j/k row navigation ---- */

  function navTable() {
    return doc.querySelector("table[data-nav-table]");
  }

  function navRows(table) {
    var rows = table.tBodies.length ? table.tBodies[0].rows : [];
    return Array.prototype.filter.call(rows, function (row) {
      return !row.classList.contains("empty-row") && row.querySelector("a[href]");
    });
  }

  function moveRow(step) {
    var table = navTable();
    if (!table) return false;
    var rows = navRows(table);
    if (!rows.length) return false;
    var current = table.querySelector("tbody tr.is-current");
    var index = rows.indexOf(current);
    var next = index === -1 ? (step > 0 ? 0 : rows.length - 1) : Math.min(Math.max(index + step, 0), rows.length - 1);
    if (current) current.classList.remove("is-current");
    var row = rows[next];
    row.classList.add("is-current");
    row.setAttribute("tabindex", "-1");
    row.focus({ preventScroll: true });
    row.scrollIntoView({ block: "nearest" });
    return true;
  }

  function openCurrentRow() {
    var row = doc.querySelector("table[data-nav-table] tbody tr.is-current");
    if (!row) return false;
    /* Only when nothing else would take the Enter key (a focused link or button handles it natively). */
    var active = doc.activeElement;
    if (active && active !== row && active !== doc.body && active.tagName !== "MAIN") return false;
    var link = row.querySelector("a[href]");
    if (!link) return false;
    link.click();
    return true;
  }

  /* ---- the collector screen: outcome first, then only its fields ---- */

  function pickOutcome(code) {
    var desk = doc.querySelector("[data-desk]");
    var form = desk && desk.querySelector('form[data-outcome-form="' + code + '"]');
    if (!form) return false;
    Array.prototype.forEach.call(desk.querySelectorAll("form[data-outcome-form]"), function (other) {
      other.hidden = other !== form;
    });
    Array.prototype.forEach.call(desk.querySelectorAll("a[data-outcome]"), function (link) {
      var on = link.getAttribute("data-outcome") === code;
      link.classList.toggle("is-selected", on);
      if (on) link.setAttribute("aria-current", "true"); else link.removeAttribute("aria-current");
    });
    var hint = desk.querySelector("[data-no-outcome]");
    if (hint) hint.hidden = true;
    if (window.history && history.replaceState) {
      var url = new URL(window.location.href);
      url.searchParams.set("outcome", code);
      history.replaceState(null, "", url.toString());
    }
    var first = form.querySelector("input:not([type=hidden]):not([type=radio]), textarea, select");
    var checked = form.querySelector("input[type=radio]:checked");
    var target = first || checked || form.querySelector("button[type=submit]");
    if (target) {
      target.focus();
      if (target.select && target.type !== "date" && target.type !== "radio") target.select();
    }
    return true;
  }

  function deskKey(key) {
    if (!doc.querySelector("[data-desk], [data-next-account]")) return false;
    var link = doc.querySelector('[data-desk] a[data-outcome-key="' + key.toLowerCase() + '"]');
    if (link) return pickOutcome(link.getAttribute("data-outcome"));
    if (key === "n") {
      var next = doc.querySelector("[data-next-account]");
      if (next) { next.click(); return true; }
    }
    if (key === "a") {
      var account = doc.querySelector("a[data-account-link]");
      if (account) { window.location.assign(account.href); return true; }
    }
    return false;
  }

  doc.addEventListener("click", function (event) {
    var link = event.target.closest && event.target.closest("[data-desk] a[data-outcome]");
    if (!link || event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) return;
    if (pickOutcome(link.getAttribute("data-outcome"))) event.preventDefault();
  });

  doc.addEventListener("keydown", function (event) {
    if (event.key !== "Escape" || anyDialogOpen()) return;
    var field = event.target;
    if (!field || !field.closest || !field.closest("[data-desk] form") || !isTyping(field)) return;
    field.blur();
    event.preventDefault();
  });

  function clearPending() {
    pendingG = false;
    if (pendingTimer) {
      clearTimeout(pendingTimer);
      pendingTimer = null;
    }
  }

  doc.addEventListener("keydown", function (event) {
    if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey) return;
    if (isTyping(event.target) || anyDialogOpen()) {
      clearPending();
      return;
    }
    var key = event.key;
    var handled = false;

    if (pendingG) {
      clearPending();
      if (key.length === 1) handled = goToSection(key.toLowerCase());
    } else if (key === "/") {
      handled = focusSearch();
    } else if (key === "?") {
      openDialog();
      handled = true;
    } else if (key === "g") {
      pendingG = true;
      pendingTimer = setTimeout(clearPending, PREFIX_TIMEOUT_MS);
      handled = true;
    } else if (key === "j") {
      handled = moveRow(1);
    } else if (key === "k") {
      handled = moveRow(-1);
    } else if (key === "Enter") {
      handled = openCurrentRow();
    } else if (key.length === 1) {
      handled = deskKey(key);
    }

    if (handled) event.preventDefault();
  });

  /* A row clicked with the mouse becomes the current one, so j/k continue from there. */
  doc.addEventListener("click", function (event) {
    var row = event.target.closest && event.target.closest("table[data-nav-table] tbody tr");
    if (!row) return;
    var old = row.parentNode.querySelector("tr.is-current");
    if (old && old !== row) old.classList.remove("is-current");
    row.classList.add("is-current");
  });

  /* ---- help button and narrow-screen menu ---- */

  doc.addEventListener("DOMContentLoaded", function () {
    var helpButton = doc.querySelector("[data-help-open]");
    if (helpButton) helpButton.addEventListener("click", openDialog);

    var dialog = doc.querySelector("dialog[data-help]");
    if (dialog) {
      /* Click on the backdrop closes the dialog. */
      dialog.addEventListener("click", function (event) {
        if (event.target !== dialog) return;
        var box = dialog.getBoundingClientRect();
        var inside = event.clientX >= box.left && event.clientX <= box.right &&
          event.clientY >= box.top && event.clientY <= box.bottom;
        if (!inside) dialog.close();
      });
    }

    /* A form that undoes work asks first (data-confirm holds the question). */
    doc.addEventListener("submit", function (event) {
      var form = event.target;
      var question = form && form.getAttribute && form.getAttribute("data-confirm");
      if (question && !window.confirm(question)) event.preventDefault();
    });

    var toggle = doc.querySelector("[data-nav-toggle]");
    var menu = doc.querySelector("[data-nav-menu]");
    if (toggle && menu) {
      var setMenu = function (open) {
        menu.classList.toggle("is-open", open);
        toggle.setAttribute("aria-expanded", open ? "true" : "false");
      };
      toggle.addEventListener("click", function () {
        setMenu(!menu.classList.contains("is-open"));
      });
      doc.addEventListener("keydown", function (event) {
        if (event.key !== "Escape" || !menu.classList.contains("is-open") || anyDialogOpen()) return;
        setMenu(false);
        toggle.focus();
        event.preventDefault();
      });
    }

    autoRefresh();
    labelCells();
    focusableScrollers();

    /* After a refused submit, focus goes to the error summary, so a screen reader reads it and Tab
       continues into the form (instead of focus starting at the top of the page). */
    var summary = doc.querySelector("[data-error-summary]");
    if (summary && !doc.querySelector("[autofocus]")) summary.focus();
  });

  /* ---- a box that scrolls sideways (a report section on a phone) can be reached and scrolled by keyboard ---- */

  function focusableScrollers() {
    var boxes = doc.querySelectorAll(".rp-section");
    Array.prototype.forEach.call(boxes, function (box) {
      if (box.scrollWidth > box.clientWidth + 1 && !box.hasAttribute("tabindex")) {
        box.setAttribute("tabindex", "0");
        var heading = box.querySelector("h2");
        if (!box.hasAttribute("aria-label") && heading) box.setAttribute("aria-label", heading.textContent.trim());
        box.setAttribute("role", "region");
      }
    });
  }

  /* ---- portal tables become cards on a narrow screen: each cell carries its column's name ---- */

  function labelCells() {
    var tables = doc.querySelectorAll(".is-portal table.table");
    Array.prototype.forEach.call(tables, function (table) {
      var head = table.tHead && table.tHead.rows[table.tHead.rows.length - 1];
      if (!head) return;
      var names = [];
      Array.prototype.forEach.call(head.cells, function (th) {
        var span = th.colSpan || 1;
        var text = (th.textContent || "").replace(/[\u2195\u25b2\u25bc]/g, "").replace(/\s+/g, " ").trim();
        for (var i = 0; i < span; i++) names.push(text);
      });
      Array.prototype.forEach.call(table.tBodies, function (body) {
        Array.prototype.forEach.call(body.rows, function (row) {
          var column = 0;
          Array.prototype.forEach.call(row.cells, function (cell) {
            var span = cell.colSpan || 1;
            if (!cell.hasAttribute("data-label") && span < names.length) cell.setAttribute("data-label", names[column] || "");
            column += span;
          });
        });
      });
      table.classList.add("has-cards");
    });
  }

  /* ---- pages that follow running work: reload every N seconds unless paused ---- */

  function autoRefresh() {
    var meta = doc.querySelector('meta[name="auto-refresh"]');
    var main = doc.querySelector("main");
    var seconds = meta ? parseInt(meta.getAttribute("content"), 10) : 0;
    if (!seconds || !main) return;
    var paused = window.sessionStorage && sessionStorage.getItem("ar-refresh-paused") === "1";
    var bar = doc.createElement("p");
    bar.className = "auto-refresh hint";
    var text = doc.createElement("span");
    var button = doc.createElement("button");
    button.type = "button";
    button.className = "btn btn-small btn-quiet";
    bar.appendChild(text);
    bar.appendChild(doc.createTextNode(" "));
    bar.appendChild(button);
    main.insertBefore(bar, main.firstChild);
    var timer = null;
    function show() {
      text.textContent = paused ? "Updates paused." : "This page updates itself every " + seconds + " seconds.";
      button.textContent = paused ? "Resume updates" : "Pause updates";
      button.setAttribute("aria-pressed", paused ? "true" : "false");
    }
    function schedule() {
      if (timer) clearTimeout(timer);
      timer = paused ? null : setTimeout(function () {
        if (isTyping(doc.activeElement) || anyDialogOpen()) { schedule(); return; }
        window.location.reload();
      }, seconds * 1000);
    }
    button.addEventListener("click", function () {
      paused = !paused;
      if (window.sessionStorage) sessionStorage.setItem("ar-refresh-paused", paused ? "1" : "0");
      show();
      schedule();
    });
    show();
    schedule();
  }
})();
