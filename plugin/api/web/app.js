// The operator workspace: one ES module, no framework. Every screen is built with
// createElement/textContent: text from VK (names, messages, titles, URLs) is never parsed as
// HTML, and only http(s) URLs become links or images. Every button is one call of the JSON
// API (docs/http-api.md); the session is an HttpOnly cookie the server sets.

const TABS = [['queue', 'Очередь'], ['mine', 'Мои'], ['all', 'Все'], ['spam', 'Спам'], ['finished', 'Завершённые']];
const DIALOG_STATUS = { open: 'Открыт', spam: 'Спам', finished: 'Завершён' };
const LEAD_STATUS = { new: 'Новый', converted: 'Конвертирован' };
const ORDER_STATUS = { new: 'Новый' };
const KIND_LABEL = {
  photo: 'Фото', doc: 'Документ', sticker: 'Стикер', audio_message: 'Голосовое сообщение',
  video: 'Видео', wall: 'Запись на стене', audio: 'Аудиозапись', link: 'Ссылка', market: 'Товар',
  gift: 'Подарок', graffiti: 'Граффити', poll: 'Опрос',
};
const EMPTY = {
  queue: 'В очереди пусто. Новые диалоги появятся здесь, как только человек напишет сообществу в VK.',
  mine: 'У вас пока нет диалогов. Закрепите диалог из очереди — он появится здесь.',
  all: 'Открытых диалогов нет. Они появятся, когда люди напишут сообществу.',
  spam: 'Здесь появятся диалоги, закрытые как спам. Любой из них можно восстановить.',
  finished: 'Здесь появятся завершённые диалоги. Восстановить их можно из блока «Коммуникация» в лиде.',
};

// Every error code of the API, as a sentence a shop assistant understands.
const ERRORS = {
  'already-claimed': 'Диалог уже закреплён за другим сотрудником.',
  'not-responsible': 'Это может сделать только ответственный за диалог сотрудник.',
  'not-a-participant': 'Писать в диалог могут только ответственный и приглашённые сотрудники. Закрепите диалог за собой или попросите пригласить вас.',
  'dialog-not-open': 'Диалог закрыт. Сначала восстановите его.',
  'dialog-not-closed': 'Диалог уже открыт — восстанавливать нечего.',
  'messages-denied': 'Человек запретил сообщения от сообщества — VK не доставит ответ, пока он снова их не разрешит.',
  'employee-not-listed': 'Сотрудник не допущен к открытым линиям. Администратор может добавить его в разделе «Интеграция с VK сообществом».',
  'already-responsible': 'Этот сотрудник уже отвечает за диалог.',
  'lead-converted': 'Лид уже конвертирован — его товары больше нельзя менять.',
  'already-converted': 'Лид уже конвертирован в контрагента и заказ.',
  'no-items': 'Добавьте в лид хотя бы один товар, чтобы конвертировать его.',
  'currency-mismatch': 'Все товары лида должны быть в одной валюте.',
  'invalid-field': 'Одно из полей заполнено неверно. Проверьте введённые значения.',
  'malformed-body': 'Сервер не понял запрос. Обновите страницу и попробуйте ещё раз.',
  'read-only-field': 'Это поле нельзя изменить вручную.',
  'unknown-employee': 'Такого сотрудника больше нет. Обновите страницу.',
  'invalid-query': 'Неверные параметры поиска. Обновите страницу.',
  'unauthorized': 'Вы не вошли в систему. Войдите снова.',
  'admin-only': 'Это может сделать только администратор.',
  'not-an-employee': 'Это действие для сотрудников открытых линий: администратор диалоги не ведёт.',
  'fixed-by-platform': 'Это поле задано в настройках платформы (переменные Spin) и меняется только там.',
  'confirmation-not-set': 'Строка подтверждения не сохранена — VK не сможет подтвердить адрес.',
  'wrong-secret': 'Секретный ключ не совпадает с указанным в VK.',
  'foreign-group': 'Событие пришло от другого сообщества VK.',
  'group-not-confirmed': 'Сообщество ещё не подтвердило адрес в VK.',
  'dialog-not-found': 'Диалог не найден — возможно, ссылка устарела.',
  'lead-not-found': 'Лид не найден — возможно, ссылка устарела.',
  'item-not-found': 'Этого товара уже нет в лиде. Обновите страницу.',
  'counterparty-not-found': 'Контрагент не найден.',
  'order-not-found': 'Заказ не найден.',
  'employee-not-found': 'Сотрудник не найден — возможно, его уже удалили.',
  'no-such-route': 'Эта функция недоступна на сервере. Обновите страницу.',
  'method-not-allowed': 'Эта функция недоступна на сервере. Обновите страницу.',
  'plugin-timeout': 'Сервер не успел ответить. Попробуйте ещё раз.',
  'plugin-fault': 'На сервере произошёл сбой. Попробуйте ещё раз.',
  'busy': 'Сервер занят: много одновременных изменений. Повторите через несколько секунд.',
  'storage-unavailable': 'Хранилище данных сейчас недоступно. Повторите чуть позже.',
  'shutting-down': 'Сервер перезапускается. Повторите через минуту.',
  'settings-unavailable': 'Настройки платформы сейчас недоступны. Повторите чуть позже.',
  'body-too-large': 'Слишком большой объём данных: больше 1 МБ.',
  'body-timeout': 'Данные передавались слишком долго. Проверьте связь и повторите.',
  'sign-in-link-spent': 'Эта ссылка для входа уже использована или заменена новой. Попросите администратора выдать новую ссылку.',
  'session-ended': 'Сеанс завершён: выдана новая ссылка для входа или вы вышли на другом устройстве. Войдите снова.',
  'cross-site': 'Запрос пришёл с чужого сайта и отклонён. Откройте CRM по её адресу и повторите.',
  'network': 'Нет связи с сервером. Проверьте подключение и повторите — введённое не потеряно.',
  'server': 'На сервере произошёл сбой. Попробуйте ещё раз.',
  'generic': 'Не получилось выполнить действие. Попробуйте ещё раз.',
};
// Field names the API's messages mention, in Russian (longer names first).
const FIELDS = [
  ['access_token', 'Ключ доступа'], ['group_name', 'Название группы'], ['api_version', 'Версия API'],
  ['confirmation', 'Строка подтверждения'], ['secret', 'Секретный ключ'], ['quantity', 'Количество'],
  ['price', 'Цена'], ['currency', 'Валюта'], ['sku', 'Артикул'], ['employees', 'Сотрудники'],
  ['text', 'Текст сообщения'], ['name', 'Наименование'], ['to', 'Сотрудник'],
];
// VK's delivery errors (the `error.code` of a failed message), in words.
const VK_REASONS = {
  0: 'VK не ответил', 5: 'ключ доступа сообщества недействителен — проверьте настройки интеграции',
  6: 'VK ограничил частоту отправки, повторите позже', 7: 'у ключа доступа нет права на сообщения',
  9: 'VK ограничил частоту отправки, повторите позже', 10: 'внутренняя ошибка VK',
  15: 'у ключа доступа нет права на сообщения', 27: 'у ключа доступа нет права на сообщения',
  29: 'VK ограничил частоту отправки, повторите позже',
  900: 'человек добавил сообщество в чёрный список', 901: 'человек не разрешил сообщения от сообщества',
  902: 'настройки приватности человека запрещают сообщения от сообщества', 914: 'сообщение слишком длинное',
};
const MAX_TEXT = 9000;
const ADMIN_NOTE = 'Сервер показывает диалоги и документы только сотрудникам открытых линий.';

const NS = 'http://www.w3.org/2000/svg';
const ICONS = {
  back: 'M15 5l-7 7 7 7',
  lines: 'M4 5h16v11H9l-5 4z',
  lead: 'M6 3h9l4 4v14H6z M14 3v5h5 M9 12h7 M9 16h7',
  people: 'M9 11a3.5 3.5 0 1 0 0-7 3.5 3.5 0 0 0 0 7z M2.5 20c0-3.6 2.9-6 6.5-6s6.5 2.4 6.5 6 M16 4.6a3.5 3.5 0 0 1 0 6.3 M18 14.2c2 .8 3.5 2.7 3.5 5.8',
  order: 'M3 7l9-4 9 4v10l-9 4-9-4z M3 7l9 4 9-4 M12 11v10',
  settings: 'M12 8.5a3.5 3.5 0 1 0 0 7 3.5 3.5 0 0 0 0-7z M12 2v3 M12 19v3 M2 12h3 M19 12h3 M4.9 4.9L7 7 M17 17l2.1 2.1 M4.9 19.1L7 17 M17 7l2.1-2.1',
  send: 'M4 12l16-8-6 16-3-7z M11 13l9-9',
  clip: 'M20 11.5l-8 8a5 5 0 0 1-7-7l8.5-8.5a3.4 3.4 0 0 1 4.8 4.8L9.8 17.3a1.8 1.8 0 0 1-2.6-2.6L15 7',
};

// ---------------------------------------------------------------------------------------
// DOM helpers

function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [key, value] of Object.entries(attrs)) {
      if (value == null || value === false) continue;
      if (key === 'text') el.textContent = value;
      else if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
      else if (key === 'class') el.className = value;
      else if (key === 'value') el.value = value;
      else el.setAttribute(key, value === true ? '' : String(value));
    }
  }
  add(el, kids);
  return el;
}

/// Replaces an element's children (null and false are skipped, unlike replaceChildren).
function set(el, ...kids) {
  el.replaceChildren();
  return add(el, kids);
}

function add(el, kids) {
  for (const kid of kids.flat(Infinity)) {
    if (kid == null || kid === false) continue;
    el.append(kid instanceof Node ? kid : String(kid));
  }
  return el;
}

function icon(name) {
  const svg = document.createElementNS(NS, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('aria-hidden', 'true');
  svg.setAttribute('focusable', 'false');
  svg.setAttribute('class', 'icon');
  const path = document.createElementNS(NS, 'path');
  path.setAttribute('d', ICONS[name]);
  svg.append(path);
  return svg;
}

function button(label, onclick, kind = '', attrs = {}) {
  return h('button', { type: 'button', class: `btn ${kind}`.trim(), onclick, ...attrs }, label);
}

/// A URL from outside (VK) that may become a link or an image: http(s) only.
function safeUrl(text) {
  if (typeof text !== 'string' || !text) return null;
  try {
    const url = new URL(text);
    return url.protocol === 'https:' || url.protocol === 'http:' ? url : null;
  } catch {
    return null;
  }
}

function externalLink(url, ...kids) {
  return h('a', { href: url.href, target: '_blank', rel: 'noopener noreferrer nofollow' }, ...kids);
}

const $ = (id) => document.getElementById(id);
const path = (...parts) => parts.map((p) => encodeURIComponent(p)).join('/');

// ---------------------------------------------------------------------------------------
// Formatting: times in the browser's time zone, money exact as the server gives it.

const timeFmt = new Intl.DateTimeFormat('ru-RU', { hour: '2-digit', minute: '2-digit' });
const dayFmt = new Intl.DateTimeFormat('ru-RU', { day: 'numeric', month: 'short' });
const fullFmt = new Intl.DateTimeFormat('ru-RU', { day: 'numeric', month: 'long', year: 'numeric', hour: '2-digit', minute: '2-digit' });

function parseTime(iso) {
  const time = iso ? new Date(iso) : null;
  return time && !Number.isNaN(time.getTime()) ? time : null;
}

function sameDay(a, b) {
  return a.getFullYear() === b.getFullYear() && a.getMonth() === b.getMonth() && a.getDate() === b.getDate();
}

function shortTime(iso) {
  const time = parseTime(iso);
  if (!time) return '';
  const now = new Date();
  if (sameDay(time, now)) return timeFmt.format(time);
  const yesterday = new Date(now);
  yesterday.setDate(now.getDate() - 1);
  if (sameDay(time, yesterday)) return `вчера ${timeFmt.format(time)}`;
  return `${dayFmt.format(time)} ${timeFmt.format(time)}`;
}

function fullTime(iso) {
  const time = parseTime(iso);
  return time ? fullFmt.format(time) : '—';
}

function timeEl(iso, format = shortTime) {
  return h('time', { datetime: iso, title: fullTime(iso) }, format(iso));
}

function waiting(iso) {
  const time = parseTime(iso);
  if (!time) return '';
  const minutes = Math.max(0, Math.floor((Date.now() - time.getTime()) / 60000));
  if (minutes < 1) return 'ждёт меньше минуты';
  if (minutes < 60) return `ждёт ${minutes} мин`;
  const hours = Math.floor(minutes / 60);
  if (hours < 24) return `ждёт ${hours} ч ${minutes % 60} мин`;
  return `ждёт ${Math.floor(hours / 24)} дн`;
}

function money(amount, currency) {
  if (amount == null) return '—';
  const [whole, fraction = ''] = String(amount).split('.');
  const negative = whole.startsWith('-');
  const digits = (negative ? whole.slice(1) : whole).replace(/\B(?=(\d{3})+(?!\d))/g, '\u00a0');
  const sign = !currency || currency === 'RUB' ? '₽' : currency;
  return `${negative ? '−' : ''}${digits}${fraction ? `,${fraction}` : ''}\u00a0${sign}`;
}

const quantity = (q) => String(q ?? '').replace('.', ',');

/// A number typed by a person ("1 500,5") as the API's decimal string, or null.
function decimal(text) {
  const clean = String(text).replace(/[\s\u00a0]/g, '').replace(',', '.');
  return /^\d+(\.\d+)?$/.test(clean) ? clean : null;
}

function firstLine(text) {
  const line = String(text || '').split('\n').find((l) => l.trim()) || '';
  return line.length > 120 ? `${line.slice(0, 120)}…` : line;
}

function personName(first, last) {
  return [first, last].filter(Boolean).join(' ');
}

// ---------------------------------------------------------------------------------------
// The API

class ApiError extends Error {
  constructor(code, status, message) {
    super(message || code);
    this.code = code;
    this.status = status;
  }
}

/// An error as a Russian sentence; `special` overrides the sentence of some codes.
function sentence(error, special = {}) {
  if (!(error instanceof ApiError)) return ERRORS.generic;
  if (special[error.code]) return special[error.code];
  if (error.code === 'invalid-field') {
    const field = FIELDS.find(([name]) => new RegExp(`(^|[^a-z_])${name}([^a-z_]|$)`).test(error.message || ''));
    if (field) return `Поле «${field[1]}» заполнено неверно. Проверьте значение.`;
  }
  return ERRORS[error.code] || (error.status >= 500 ? ERRORS.server : ERRORS.generic);
}

async function api(method, url, body) {
  const init = { method, credentials: 'same-origin', cache: 'no-store', headers: {} };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(url, init);
  } catch {
    throw new ApiError('network', 0);
  }
  let data = null;
  try {
    const text = await response.text();
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) {
    const error = data && typeof data.error === 'object' && data.error ? data.error : {};
    const code = typeof error.code === 'string' ? error.code : `http-${response.status}`;
    const failure = new ApiError(code, response.status, typeof error.message === 'string' ? error.message : '');
    if (response.status === 401 && S.me && url !== '/api/sessions') signedOut(failure);
    throw failure;
  }
  return data || {};
}

/// Every page of a list (at most `pages` pages of 200).
async function allPages(url, field, pages = 10) {
  const join = url.includes('?') ? '&' : '?';
  let items = [];
  let after = null;
  let extra = {};
  for (let n = 0; n < pages; n++) {
    const page = await api('GET', `${url}${join}limit=200${after ? `&after=${encodeURIComponent(after)}` : ''}`);
    items = items.concat(Array.isArray(page[field]) ? page[field] : []);
    extra = page;
    after = page.next;
    if (!after) break;
  }
  return { items, extra };
}

// ---------------------------------------------------------------------------------------
// State

const S = {
  me: null,
  employees: new Map(),
  counts: null,
  tab: 'queue',
  route: { view: 'lines' },
  seq: 0,
  list: null, // {key, el, refresh}
  chat: null,
  side: null,
  doc: null,
  etag: null,
  polling: false,
  pollTimer: 0,
};

const isAdmin = () => S.me?.role === 'admin';
const isEmployee = () => S.me?.role === 'employee';

function employeeName(id) {
  if (!id) return '';
  if (S.me && id === S.me.id) return `${S.me.name} (вы)`;
  return S.employees.get(id) || 'сотрудник удалён';
}

async function loadEmployees() {
  try {
    const { employees } = await api('GET', '/api/employees');
    S.employees = new Map((employees || []).map((e) => [e.id, e.name]));
  } catch {
    // Names fall back to «сотрудник удалён» until the next refresh.
  }
}

// ---------------------------------------------------------------------------------------
// Toast, modal, confirmation

let toastTimer = 0;
function toast(text) {
  const el = $('toast');
  el.textContent = text;
  el.classList.add('shown');
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => el.classList.remove('shown'), 3500);
}

/// Opens the modal with a title, a body and actions; `onclose` runs when it closes.
function modal(title, body, actions) {
  const dialog = $('modal');
  const error = h('p', { class: 'error', role: 'alert' });
  set(dialog, 
    h('h2', { id: 'modal-title' }, title),
    h('div', { class: 'modal-body' }, body),
    error,
    h('div', { class: 'modal-actions' }, actions),
  );
  if (!dialog.open) dialog.showModal();
  return { close: () => dialog.close(), error };
}

/// Asks to confirm; runs `action` on «confirm», shows its error in the modal on failure.
// Runs a dialog box's action: its button waits while it runs; the box closes when it
// succeeds, and says why in words when it fails (what was chosen stays).
async function runInBox(box, go, action) {
  go.disabled = true;
  try {
    await action();
    box.close();
  } catch (error) {
    box.error.textContent = error instanceof ApiError ? sentence(error) : String(error.message || ERRORS.generic);
    go.disabled = false;
  }
}

function confirmAction(title, text, confirmLabel, action, kind = 'primary') {
  const go = button(confirmLabel, () => runInBox(box, go, action), kind);
  const box = modal(title, h('p', null, text), [go, button('Отмена', () => box.close())]);
  go.focus();
}

// ---------------------------------------------------------------------------------------
// Routing: #/lines/<tab>, #/dialog/<id>, #/lead/<id>, #/counterparty/<id>, #/order/<id>,
// #/leads, #/counterparties, #/orders, #/settings

function visibleTabs() {
  return TABS.filter(([id]) => (id === 'all' ? isAdmin() : id === 'mine' ? isEmployee() : true));
}

function parseRoute() {
  let parts;
  try {
    parts = location.hash.replace(/^#\/?/, '').split('/').map(decodeURIComponent);
  } catch {
    parts = [];
  }
  const [view, id] = parts;
  if (view === 'lines') return { view, tab: visibleTabs().some(([t]) => t === id) ? id : 'queue' };
  if (['dialog', 'lead', 'counterparty', 'order'].includes(view) && id) return { view, id };
  if (['leads', 'counterparties', 'orders'].includes(view)) return { view };
  if (view === 'settings' && isAdmin()) return { view };
  return { view: 'lines', tab: S.tab };
}

const DOC_LIST = { lead: 'leads', counterparty: 'counterparties', order: 'orders' };
const LAYOUT = {
  lines: 'lines', dialog: 'dialog', leads: 'docs', counterparties: 'docs', orders: 'docs',
  lead: 'doc', counterparty: 'doc', order: 'doc', settings: 'settings',
};

function render() {
  const route = parseRoute();
  S.route = route;
  const seq = ++S.seq;
  if (route.view === 'lines') S.tab = route.tab;
  $('main').dataset.layout = LAYOUT[route.view];
  markNav(route.view);
  const listPane = $('pane-list');
  const mainPane = $('pane-main');
  const sidePane = $('pane-side');

  // The list on the left: the open lines, or the list of the document's kind.
  const listKey = route.view === 'lines' || route.view === 'dialog' ? `lines:${S.tab}`
    : route.view === 'settings' ? null : DOC_LIST[route.view] || route.view;
  if (!listKey) {
    S.list = null;
    set(listPane);
  } else if (S.list?.key !== listKey) {
    S.list = listKey.startsWith('lines:') ? linesList(S.tab) : docsList(listKey);
    S.list.key = listKey;
    set(listPane, S.list.el);
    S.list.refresh();
  } else {
    S.list.select?.();
  }

  // The middle: the chat, a document, the settings or a hint.
  if (route.view !== 'dialog') S.chat = null;
  if (!['lead', 'counterparty', 'order'].includes(route.view)) S.doc = null;
  if (route.view === 'dialog') {
    if (S.chat?.id !== route.id) {
      S.chat = chatView(route.id, seq);
      set(mainPane, S.chat.el);
      S.chat.refresh();
    }
  } else if (route.view === 'lead' || route.view === 'counterparty' || route.view === 'order') {
    if (S.doc?.key !== `${route.view}:${route.id}`) {
      const make = { lead: leadView, counterparty: counterpartyView, order: orderView }[route.view];
      S.doc = make(route.id, false);
      S.doc.key = `${route.view}:${route.id}`;
      set(mainPane, S.doc.el);
      S.doc.refresh();
    }
  } else if (route.view === 'settings') {
    set(mainPane, settingsView().el);
  } else {
    const hint = route.view === 'lines' ? 'Выберите диалог слева, чтобы открыть переписку.'
      : { leads: 'Выберите лид из списка.', counterparties: 'Выберите контрагента из списка.', orders: 'Выберите заказ из списка.' }[route.view];
    set(mainPane, h('div', { class: 'placeholder' }, icon(route.view === 'lines' ? 'lines' : 'lead'), h('p', null, hint)));
  }

  // The right: the lead of the open dialog (wide screens).
  if (route.view !== 'dialog') {
    S.side = null;
    set(sidePane);
  }
  document.title = `${route.view === 'settings' ? 'Интеграция с VK сообществом' : 'Открытые линии VK'} — CRM`;
}

function showSide(leadId) {
  if (S.side?.id === leadId) return;
  S.side = leadView(leadId, true);
  S.side.id = leadId;
  set($('pane-side'), S.side.el);
  S.side.refresh();
}

// ---------------------------------------------------------------------------------------
// Navigation: a top bar on wide screens, a bottom bar on a phone.

function buildNav() {
  const items = [
    ['lines', `#/lines/${S.tab}`, 'Открытые линии', 'lines'],
    ['leads', '#/leads', 'Лиды', 'lead'],
    ['counterparties', '#/counterparties', 'Контрагенты', 'people'],
    ['orders', '#/orders', 'Заказы', 'order'],
  ];
  if (isAdmin()) items.push(['settings', '#/settings', 'Настройки', 'settings']);
  const nav = $('nav');
  set(nav, ...items.map(([key, href, label, glyph]) => h('a', { href, 'data-key': key, class: 'nav-link' }, icon(glyph), h('span', null, label))));
  nav.hidden = false;
}

function markNav(view) {
  const key = view === 'dialog' ? 'lines' : DOC_LIST[view] || view;
  for (const link of $('nav').querySelectorAll('a')) {
    if (link.dataset.key === key) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
    if (link.dataset.key === 'lines') link.setAttribute('href', `#/lines/${S.tab}`);
  }
}

// ---------------------------------------------------------------------------------------
// «Открытые линии»: tabs, rows, «Закрепить за мной»

function linesList(tab) {
  const tabs = h('nav', { class: 'tabs', 'aria-label': 'Фильтр диалогов' });
  const rows = h('ul', { class: 'rows', 'aria-busy': 'true' }, h('li', { class: 'empty' }, 'Загрузка…'));
  const error = h('p', { class: 'error', role: 'alert' });
  const more = button('Показать ещё', () => load(true), 'more', { hidden: true });
  const el = h('div', { class: 'list' }, h('h1', { class: 'pane-title' }, 'Открытые линии'), tabs, error, rows, more);
  let items = [];
  let next = null;
  let loaded = false;

  function drawTabs() {
    set(tabs, ...visibleTabs().map(([id, label]) => {
      const count = (id === 'queue' || id === 'mine') && S.counts ? S.counts[id] : null;
      return h('a', { href: `#/lines/${id}`, class: 'tab', 'aria-current': id === tab ? 'page' : null },
        label, Number.isFinite(count) && count > 0 ? h('span', { class: 'count' }, String(count)) : null);
    }));
  }

  function draw() {
    rows.removeAttribute('aria-busy');
    if (!items.length) {
      set(rows, error.textContent ? '' : h('li', { class: 'empty' }, loaded ? EMPTY[tab] : 'Загрузка…'));
    } else {
      set(rows, ...items.map((d) => dialogRow(d, tab, (message) => { error.textContent = message; })));
    }
    more.hidden = !next;
  }

  async function load(more) {
    const limit = more ? 50 : Math.min(200, Math.max(50, items.length));
    const after = more && next ? `&after=${encodeURIComponent(next)}` : '';
    const [page, counts] = await Promise.all([
      api('GET', `/api/dialogs?status=${tab}&limit=${limit}${after}`),
      api('GET', '/api/dialogs/counts').catch(() => null),
    ]);
    const got = Array.isArray(page.dialogs) ? page.dialogs : [];
    items = more ? items.concat(got) : got;
    next = page.next || null;
    loaded = true;
    if (counts) S.counts = counts;
  }

  async function refresh() {
    try {
      await load(false);
      error.textContent = '';
    } catch (e) {
      loaded = true;
      error.textContent = `Список не загрузился. ${sentence(e, { 'not-an-employee': ADMIN_NOTE })}`;
    }
    drawTabs();
    draw();
  }

  drawTabs();
  return { el, refresh, select: draw };
}

function dialogRow(d, tab, fail) {
  const last = d.last_message;
  let preview = 'Сообщений пока нет';
  if (last) {
    const text = firstLine(last.text) || 'Вложение';
    preview = last.direction === 'out' ? `Ответ: ${text}` : text;
  }
  const meta = [];
  if (d.status !== 'open') meta.push(h('span', { class: `chip ${d.status}` }, DIALOG_STATUS[d.status] || d.status));
  if (d.status === 'open' && d.waiting_since) meta.push(h('span', { class: 'waiting' }, waiting(d.waiting_since)));
  meta.push(h('span', { class: 'resp' }, d.responsible ? h('bdi', null, employeeName(d.responsible)) : 'Не закреплён'));
  const unread = Number(d.unread) || 0;
  const link = h('a', { class: 'row-link', href: `#/dialog/${path(d.id)}`, 'aria-current': S.route.id === d.id ? 'page' : null },
    h('span', { class: 'row-top' },
      h('bdi', { class: 'row-name' }, d.name || 'Без имени'),
      timeEl(d.last_activity_at || d.started_at)),
    h('span', { class: 'row-last', dir: 'auto' }, preview),
    h('span', { class: 'row-meta' }, meta,
      unread ? h('span', { class: 'badge', title: `Непрочитанных: ${unread}` }, String(unread), h('span', { class: 'sr-only' }, ' непрочитанных')) : null));
  const li = h('li', { class: `row${unread ? ' unread' : ''}` }, link);
  if (tab === 'queue' && isEmployee() && d.status === 'open' && !d.responsible) {
    const claim = button('Закрепить за мной', async () => {
      claim.disabled = true;
      try {
        await api('POST', `/api/dialogs/${path(d.id)}/claim`);
        toast('Диалог закреплён за вами');
        location.hash = `#/dialog/${path(d.id)}`;
        refreshAll();
      } catch (e) {
        claim.disabled = false;
        fail(await claimSentence(e, d.id));
      }
    }, 'small primary', { 'aria-label': `Закрепить за мной: ${d.name || 'диалог'}` });
    li.append(claim);
  }
  return li;
}

/// «Диалог уже закреплён за Анной»: the sentence of a failed claim, with the name when known.
async function claimSentence(error, id) {
  if (error instanceof ApiError && error.code === 'already-claimed') {
    try {
      const dialog = await api('GET', `/api/dialogs/${path(id)}`);
      if (dialog.responsible) return `Диалог уже закреплён за сотрудником ${employeeName(dialog.responsible)}.`;
    } catch {
      // The general sentence below.
    }
  }
  return sentence(error);
}

// ---------------------------------------------------------------------------------------
// The chat

function chatView(id, seq) {
  let dialog = null;
  let signature = '';
  let readCount = -1;
  const rendered = new Map(); // message id → {sig, el}
  const expanded = new Set();

  const back = h('a', { class: 'back', href: `#/lines/${S.tab}`, 'aria-label': 'Назад к списку диалогов' }, icon('back'));
  const title = h('h1', { class: 'chat-name' }, 'Загрузка…');
  const sub = h('p', { class: 'chat-sub' });
  const actions = h('div', { class: 'chat-actions' });
  const notice = h('p', { class: 'error', role: 'alert' });
  const log = h('ol', { class: 'messages', role: 'log', 'aria-label': 'Сообщения' });
  // Disabled until the dialog is loaded and says the reader may write (drawComposer): a text
  // typed before that would not be sent, and nothing would say so.
  const text = h('textarea', { id: 'composer-text', rows: '2', placeholder: 'Напишите сообщение…', autocomplete: 'off', disabled: true });
  const send = h('button', { type: 'submit', class: 'btn primary send', disabled: true }, icon('send'), h('span', null, 'Отправить'));
  const reason = h('p', { class: 'composer-reason' });
  const failed = h('p', { class: 'error', role: 'alert' });
  const composer = h('form', { class: 'composer', onsubmit: (e) => { e.preventDefault(); submit(); } },
    h('label', { for: 'composer-text', class: 'sr-only' }, 'Сообщение'), text, send);
  text.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      submit();
    }
  });
  const el = h('div', { class: 'chat' },
    h('header', { class: 'chat-head' }, back, h('div', { class: 'chat-title' }, title, sub)),
    actions, notice, log, h('div', { class: 'composer-wrap' }, reason, failed, composer));

  const alive = () => S.chat?.id === id;

  function canSend() {
    if (!dialog || !isEmployee()) return false;
    return dialog.status === 'open' && dialog.participants.includes(S.me.id) && dialog.messages_allowed !== false;
  }

  function whyNot() {
    if (!dialog) return '';
    if (!isEmployee()) return 'Отвечают сотрудники открытых линий — администратор видит переписку, но не пишет в неё.';
    if (dialog.status !== 'open') return 'Диалог закрыт. Восстановите его, чтобы ответить.';
    if (dialog.messages_allowed === false) return 'Человек запретил сообщения от сообщества — ответ не будет доставлен, пока он их снова не разрешит.';
    if (!dialog.participants.includes(S.me.id)) {
      return dialog.responsible ? 'Писать могут ответственный и приглашённые сотрудники. Попросите ответственного пригласить вас.'
        : 'Закрепите диалог за собой, чтобы ответить.';
    }
    return '';
  }

  async function submit(again) {
    const body = again ?? text.value;
    if (!canSend() || !body.trim()) return;
    if (body.length > MAX_TEXT) {
      failed.textContent = `Сообщение длиннее ${MAX_TEXT} символов — VK столько не примет. Разделите его на части.`;
      return;
    }
    send.disabled = true;
    failed.textContent = '';
    try {
      await api('POST', `/api/dialogs/${path(id)}/messages`, { text: body });
      if (again === undefined) text.value = '';
      await refresh();
      refreshList();
    } catch (e) {
      failed.textContent = `Сообщение не отправлено. ${sentence(e)}`;
    } finally {
      send.disabled = !canSend();
      if (again === undefined) text.focus();
    }
  }

  async function command(name, body, done) {
    notice.textContent = '';
    try {
      await api('POST', `/api/dialogs/${path(id)}/${name}`, body);
      if (done) toast(done);
      refreshAll();
    } catch (e) {
      const message = name === 'claim' ? await claimSentence(e, id) : sentence(e);
      throw new Error(message);
    }
  }

  // A command straight from a button; its failure is shown above the messages.
  const direct = (name, done) => async (event) => {
    const target = event.currentTarget;
    target.disabled = true;
    try {
      await command(name, undefined, done);
    } catch (e) {
      notice.textContent = e.message;
    } finally {
      target.disabled = false;
    }
  };

  function drawHead() {
    const profile = Number.isSafeInteger(dialog.peer_id) && dialog.peer_id > 0 ? new URL(`https://vk.com/id${dialog.peer_id}`) : null;
    const name = h('bdi', null, dialog.name || 'Без имени');
    set(title, profile ? externalLink(profile, name, h('span', { class: 'sr-only' }, ' — профиль VK')) : name);
    const participants = (dialog.participants || []).filter((p) => p !== dialog.responsible);
    set(sub, 
      h('span', { class: `chip ${dialog.status}` }, DIALOG_STATUS[dialog.status] || dialog.status),
      h('span', null, 'Ответственный: ', dialog.responsible ? h('bdi', null, employeeName(dialog.responsible)) : 'не закреплён'),
      participants.length ? h('span', null, 'Участники: ', participants.map((p, n) => [n ? ', ' : '', h('bdi', null, employeeName(p))])) : null,
    );
    const me = S.me.id;
    const open = dialog.status === 'open';
    const responsible = dialog.responsible === me && isEmployee();
    const participant = isEmployee() && dialog.participants.includes(me);
    const sig = JSON.stringify([dialog.status, dialog.responsible, dialog.participants, S.me.role]);
    if (sig === signature) return;
    signature = sig;
    set(actions, 
      isEmployee() && open && !dialog.responsible ? button('Закрепить за мной', direct('claim', 'Диалог закреплён за вами'), 'primary') : null,
      h('a', { class: 'btn', href: `#/lead/${path(dialog.lead_id)}` }, 'Перейти в лид'),
      button('История', showHistory),
      open && participant ? manageMenu(responsible) : null,
      open && responsible ? button('Закрыть как спам', () => confirmAction('Закрыть как спам?',
        'Диалог уйдёт в раздел «Спам». Если это ошибка, его можно будет восстановить оттуда.',
        'Закрыть как спам', () => command('spam', undefined, 'Диалог закрыт как спам'), 'danger')) : null,
      open && responsible ? button('Завершить', () => confirmAction('Завершить диалог?',
        'Диалог уйдёт в «Завершённые». Восстановить его можно из блока «Коммуникация» в лиде.',
        'Завершить', () => command('finish', undefined, 'Диалог завершён'))) : null,
      !open && isEmployee() ? button('Восстановить диалог', direct('restore', 'Диалог восстановлен'), 'primary') : null,
    );
  }

  function manageMenu(responsible) {
    const menu = h('div', { class: 'menu', hidden: true });
    const toggle = button('Управление', () => setOpen(menu.hidden), '', { 'aria-expanded': 'false', 'aria-haspopup': 'true' });
    const setOpen = (open) => {
      menu.hidden = !open;
      toggle.setAttribute('aria-expanded', String(open));
      if (open) menu.querySelector('button')?.focus();
    };
    const item = (label, run) => button(label, () => { setOpen(false); run(); }, 'menu-item');
    add(menu, [
      responsible ? item('Пригласить сотрудника', invite) : null,
      responsible ? item('Делегировать', delegate) : null,
      item('Покинуть диалог', () => confirmAction('Покинуть диалог?',
        dialog.responsible === S.me.id ? 'Вы ответственный: без делегирования диалог вернётся в очередь. Приглашённые сотрудники останутся в нём.'
          : 'Диалог пропадёт из вашего списка «Мои». Читать его можно будет и дальше.',
        'Покинуть диалог', () => command('leave', undefined, 'Вы покинули диалог'))),
    ]);
    menu.addEventListener('keydown', (e) => { if (e.key === 'Escape') { setOpen(false); toggle.focus(); } });
    document.addEventListener('click', (e) => { if (!wrap.contains(e.target)) setOpen(false); });
    const wrap = h('div', { class: 'menu-wrap' }, toggle, menu);
    return wrap;
  }

  function candidates() {
    const taken = new Set(dialog.participants);
    return [...S.employees].filter(([eid]) => !taken.has(eid));
  }

  function invite() {
    const others = candidates();
    const boxes = others.map(([eid, name]) => h('input', { type: 'checkbox', value: eid, id: `invite-${eid}` }));
    const go = button('Пригласить', async () => {
      const chosen = boxes.filter((b) => b.checked).map((b) => b.value);
      if (!chosen.length) {
        box.error.textContent = 'Отметьте хотя бы одного сотрудника.';
        return;
      }
      await runInBox(box, go, () => command('invite', { employees: chosen }, chosen.length > 1 ? 'Сотрудники приглашены' : 'Сотрудник приглашён'));
    }, 'primary');
    const body = others.length
      ? h('fieldset', { class: 'choices' }, h('legend', null, 'Кого пригласить в диалог'),
        others.map(([eid, name], n) => h('label', { class: 'choice', for: `invite-${eid}` }, boxes[n], h('bdi', null, name))))
      : h('p', null, 'Все сотрудники уже участвуют в диалоге.');
    const box = modal('Пригласить сотрудника', body, [others.length ? go : null, button('Отмена', () => box.close())]);
  }

  function delegate() {
    const others = [...S.employees].filter(([eid]) => eid !== dialog.responsible);
    const radios = others.map(([eid]) => h('input', { type: 'radio', name: 'delegate-to', value: eid, id: `delegate-${eid}` }));
    const go = button('Делегировать', async () => {
      const chosen = radios.find((r) => r.checked)?.value;
      if (!chosen) {
        box.error.textContent = 'Выберите сотрудника.';
        return;
      }
      await runInBox(box, go, () => command('delegate', { to: chosen }, `Диалог передан: ${employeeName(chosen)}`));
    }, 'primary');
    const body = others.length
      ? h('fieldset', { class: 'choices' }, h('legend', null, 'Кому передать ответственность'),
        others.map(([eid, name], n) => h('label', { class: 'choice', for: `delegate-${eid}` }, radios[n], h('bdi', null, name))),
        h('p', { class: 'hint' }, 'Вы останетесь участником, пока не покинете диалог.'))
      : h('p', null, 'Других сотрудников нет.');
    const box = modal('Делегировать', body, [others.length ? go : null, button('Отмена', () => box.close())]);
  }

  async function showHistory() {
    const list = h('ol', { class: 'history' }, h('li', null, 'Загрузка…'));
    const operators = h('p', { class: 'operators' });
    const box = modal('История диалога', [operators, list], [button('Закрыть', () => box.close())]);
    try {
      const { items, extra } = await allPages(`/api/dialogs/${path(id)}/history`, 'events');
      const ops = Array.isArray(extra.operators) ? extra.operators : [];
      set(operators, h('strong', null, 'Операторы: '),
        ops.length ? ops.map((o, n) => [n ? ', ' : '', h('bdi', null, employeeName(o))]) : 'пока никто не работал с диалогом');
      set(list, ...(items.length ? items.map(historyRow) : [h('li', null, 'Событий пока нет.')]));
    } catch (e) {
      box.error.textContent = `История не загрузилась. ${sentence(e)}`;
      set(list);
    }
  }

  function historyRow(event) {
    const actor = event.actor ? h('bdi', null, employeeName(event.actor)) : null;
    const subject = event.subject ? h('bdi', null, employeeName(event.subject)) : null;
    const what = {
      'message-in': ['Сообщение клиента'],
      'message-out': actor ? [actor, ': ответ'] : ['Ответ сообщества из VK'],
      'claimed': [actor, ': закрепление за собой'],
      'invited': [actor, ': приглашение — ', subject],
      'left': [actor, ': выход из диалога'],
      'delegated': [actor, ': делегирование — ', subject],
      'closed-as-spam': [actor, ': закрытие как спам'],
      'finished': [actor, ': завершение диалога'],
      'restored': [actor, ': восстановление — ', subject ? ['ответственный ', subject] : 'в очередь'],
      'reopened': ['Клиент написал снова, диалог открыт — ', subject ? ['ответственный ', subject] : 'в очереди'],
    }[event.kind] || [event.kind];
    const message = event.message_id ? rendered.get(event.message_id)?.message : null;
    return h('li', null, timeEl(event.at, fullTime), h('span', { class: 'what' }, what),
      message?.text ? h('q', { dir: 'auto' }, firstLine(message.text)) : null);
  }

  function messageEl(m) {
    const out = m.direction === 'out';
    const li = h('li', { class: `msg ${out ? 'out' : 'in'}${m.delivery === 'failed' ? ' failed' : ''}`, 'data-id': m.id });
    if (out) li.append(h('span', { class: 'msg-author' }, m.author ? h('bdi', null, employeeName(m.author)) : 'Сообщество (из VK)'));
    if (m.text) li.append(h('p', { class: 'msg-text', dir: 'auto' }, m.text));
    const attachments = Array.isArray(m.attachments) ? m.attachments : [];
    if (attachments.length) li.append(h('div', { class: 'attachments' }, attachments.map(attachmentEl)));
    const meta = h('div', { class: 'msg-meta' }, timeEl(m.sent_at));
    const previous = Array.isArray(m.previous_texts) ? m.previous_texts : [];
    let earlier = null;
    if (m.edited_at) {
      earlier = h('div', { class: 'earlier', hidden: !expanded.has(m.id) }, h('p', { class: 'earlier-title' }, 'Прежний текст:'),
        previous.map((t) => h('p', { class: 'msg-text', dir: 'auto' }, t || '(пусто)')));
      const toggle = button('изменено', () => {
        earlier.hidden = !earlier.hidden;
        toggle.setAttribute('aria-expanded', String(!earlier.hidden));
        if (earlier.hidden) expanded.delete(m.id);
        else {
          expanded.add(m.id);
          earlier.scrollIntoView({ block: 'nearest' });
        }
      }, 'link', { 'aria-expanded': String(expanded.has(m.id)), title: `Изменено ${fullTime(m.edited_at)}. Показать прежний текст` });
      meta.append(toggle);
    }
    if (out && m.delivery) {
      if (m.delivery === 'sent') meta.append(h('span', { class: 'delivery sent' }, 'Отправлено'));
      else if (m.delivery === 'pending') meta.append(h('span', { class: 'delivery pending' }, 'Отправляется…'));
      else if (m.delivery === 'failed') {
        const code = m.error && Number.isFinite(m.error.code) ? m.error.code : 0;
        meta.append(h('span', { class: 'delivery failed' }, `Не доставлено: ${VK_REASONS[code] || `VK отказал (код ${code})`}`));
        if (canSend() && m.text) meta.append(button('Повторить', () => submit(m.text), 'small'));
      }
    }
    li.append(meta);
    if (earlier) li.append(earlier);
    return li;
  }

  function drawMessages(messages) {
    const nearBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 120;
    const sendable = canSend();
    const nodes = messages.map((m) => {
      const sig = JSON.stringify([m, sendable, m.author ? S.employees.get(m.author) : null]);
      const old = rendered.get(m.id);
      if (old && old.sig === sig) return old.el;
      const entry = { sig, el: messageEl(m), message: m };
      rendered.set(m.id, entry);
      return entry.el;
    });
    if (!nodes.length) nodes.push(h('li', { class: 'empty' }, 'Сообщений пока нет.'));
    const current = [...log.children];
    let same = 0;
    while (same < current.length && same < nodes.length && current[same] === nodes[same]) same++;
    current.slice(same).forEach((n) => n.remove());
    add(log, nodes.slice(same));
    if (nearBottom || same === 0) log.scrollTop = log.scrollHeight;
  }

  function drawComposer() {
    const allowed = canSend();
    text.disabled = !allowed;
    send.disabled = !allowed;
    composer.hidden = !allowed && !isEmployee();
    reason.textContent = whyNot();
  }

  async function refresh() {
    try {
      const [d, m] = await Promise.all([api('GET', `/api/dialogs/${path(id)}`), allPages(`/api/dialogs/${path(id)}/messages`, 'messages')]);
      if (!alive()) return;
      dialog = d;
      if (!dialog.participants) dialog.participants = [];
      drawHead();
      drawComposer();
      drawMessages(m.items);
      if (S.route.view === 'dialog' && dialog.lead_id) showSide(dialog.lead_id);
      const incoming = m.items.filter((x) => x.direction === 'in').length;
      if (isEmployee() && incoming !== readCount && document.visibilityState === 'visible') {
        readCount = incoming;
        api('POST', `/api/dialogs/${path(id)}/read`).then(refreshList, () => {});
      }
    } catch (e) {
      if (!alive()) return;
      if (!dialog) {
        title.textContent = 'Диалог не открылся';
        set(log, h('li', { class: 'empty' }, sentence(e)));
        composer.hidden = true;
      } else {
        notice.textContent = `Переписка не обновилась. ${sentence(e)}`;
      }
    }
  }

  return { id, el, refresh, seq };
}

function attachmentEl(a) {
  const kind = typeof a.type === 'string' ? a.type : typeof a.kind === 'string' ? a.kind : '';
  const url = safeUrl(a.url);
  const label = (typeof a.title === 'string' && a.title) || KIND_LABEL[kind] || 'Вложение';
  if (url && url.protocol === 'https:' && ['photo', 'sticker', 'graffiti'].includes(kind)) {
    return externalLink(url, h('img', { src: url.href, alt: label, loading: 'lazy', referrerpolicy: 'no-referrer', class: 'att-img' }));
  }
  if (url) return h('span', { class: 'att' }, icon('clip'), h('span', null, externalLink(url, h('bdi', null, label))));
  return h('span', { class: 'att' }, icon('clip'), h('span', null, h('bdi', null, label), ' (ссылки нет)'));
}

// ---------------------------------------------------------------------------------------
// Documents: «Лид», «Контрагент», «Заказ», each with «Коммуникация»

function docShell(kind, listHref, side) {
  const title = h(side ? 'h2' : 'h1', { class: 'doc-title' }, 'Загрузка…');
  const body = h('div', { class: 'doc-body' });
  const error = h('p', { class: 'error', role: 'alert' });
  const head = h('header', { class: 'doc-head' },
    side ? null : h('a', { class: 'back', href: listHref, 'aria-label': 'Назад к списку' }, icon('back')),
    h('div', null, h('p', { class: 'kicker' }, kind), title));
  return { el: h('article', { class: `doc${side ? ' side' : ''}` }, head, error, body), title, body, error };
}

function fields(pairs) {
  return h('dl', { class: 'fields' }, pairs.filter(Boolean).map(([label, value]) => [h('dt', null, label), h('dd', null, value ?? '—')]));
}

function communication(c, restore) {
  const section = h('section', { class: 'block comm', 'aria-label': 'Коммуникация' }, h('h3', null, 'Коммуникация'));
  if (!c) return add(section, [h('p', { class: 'muted' }, 'Диалог не найден.')]);
  add(section, [
    fields([
      ['Начало диалога', timeEl(c.started_at, fullTime)],
      ['Клиент', h('bdi', null, c.name || '—')],
      ['Статус диалога', h('span', { class: `chip ${c.status}` }, DIALOG_STATUS[c.status] || c.status)],
    ]),
    h('p', { class: 'comm-actions' },
      h('a', { class: 'btn', href: `#/dialog/${path(c.dialog_id)}` }, 'Открыть переписку'),
      restore && c.status !== 'open' && isEmployee() ? restore : null),
  ]);
  return section;
}

function goodsTable(items, currency, editable, onQuantity, onRemove) {
  if (!items.length) return h('p', { class: 'muted' }, editable ? 'Товаров пока нет. Добавьте их ниже — итог посчитается сам.' : 'Товаров нет.');
  return h('ul', { class: 'goods' }, items.map((item) => {
    let qty;
    if (editable) {
      const input = h('input', { value: quantity(item.quantity), inputmode: 'decimal', size: '6', 'aria-label': `Количество: ${item.name}` });
      let sent = input.value;
      const commit = () => {
        if (input.value === sent) return;
        sent = input.value;
        onQuantity(item, input);
      };
      input.addEventListener('change', commit);
      qty = h('form', { class: 'qty', onsubmit: (e) => { e.preventDefault(); commit(); } }, input);
    } else {
      qty = h('span', { class: 'qty' }, quantity(item.quantity));
    }
    return h('li', { class: 'good' },
      h('span', { class: 'good-name' }, h('bdi', null, item.name), item.sku ? h('span', { class: 'sku' }, h('bdi', null, item.sku)) : null),
      h('span', { class: 'good-calc' }, qty, h('span', null, ` × ${money(item.price, item.currency || currency)}`)),
      h('strong', { class: 'good-total' }, money(item.total, item.currency || currency)),
      editable ? button('Удалить', () => onRemove(item), 'small ghost', { 'aria-label': `Удалить: ${item.name}` }) : null);
  }));
}

function leadView(id, side) {
  const shell = docShell('Лид', '#/leads', side);
  const goods = h('div', { class: 'goods-wrap' });
  const total = h('p', { class: 'total' });
  const convertArea = h('div', { class: 'convert' });
  const commArea = h('div');
  const fieldArea = h('div');
  const form = addItemForm(id, (lead) => draw(lead), shell.error);
  add(shell.body, [fieldArea, commArea,
    h('section', { class: 'block', 'aria-label': 'Товары' }, h('h3', null, 'Товары'), goods, total, form.el), convertArea]);
  let lead = null;
  const alive = () => (side ? S.side?.id === id : S.doc?.key === `lead:${id}`);

  async function change(run) {
    shell.error.textContent = '';
    try {
      draw(await run());
    } catch (e) {
      shell.error.textContent = sentence(e);
    }
  }

  function draw(next) {
    if (!next || !alive()) return;
    lead = next;
    set(shell.title, h('bdi', null, lead.title || 'Лид'));
    set(fieldArea, fields([
      ['Название', h('bdi', null, lead.title || '—')],
      ['Имя', h('bdi', null, lead.first_name || '—')],
      ['Фамилия', h('bdi', null, lead.last_name || '—')],
      ['Источник', h('bdi', null, lead.source || '—')],
      ['Статус', h('span', { class: `chip ${lead.status}` }, LEAD_STATUS[lead.status] || lead.status)],
    ]));
    const restore = button('Восстановить диалог', async (event) => {
      const target = event.currentTarget;
      target.disabled = true;
      shell.error.textContent = '';
      try {
        await api('POST', `/api/leads/${path(id)}/restore-dialog`);
        toast('Диалог восстановлен');
        refreshAll();
      } catch (e) {
        shell.error.textContent = sentence(e);
        target.disabled = false;
      }
    }, 'primary');
    set(commArea, communication(lead.communication, restore));
    const editable = lead.status !== 'converted';
    // A quantity being typed is not redrawn under the person's fingers.
    if (!goods.contains(document.activeElement) || goods.dataset.lead !== JSON.stringify(lead.items)) {
      goods.dataset.lead = JSON.stringify(lead.items);
      set(goods, goodsTable(lead.items || [], lead.currency, editable,
        (item, input) => {
          const q = decimal(input.value);
          if (!q || Number(q) <= 0) {
            shell.error.textContent = 'Количество — число больше нуля, например 2 или 1,5.';
            return;
          }
          change(() => api('PATCH', `/api/leads/${path(id)}/items/${path(item.id)}`, { quantity: q }));
        },
        (item) => change(() => api('DELETE', `/api/leads/${path(id)}/items/${path(item.id)}`))));
    }
    set(total, 'Итого: ', h('strong', null, money(lead.total, lead.currency)));
    form.el.hidden = !editable;
    drawConvert();
  }

  async function drawConvert() {
    if (lead.status === 'converted' || lead.counterparty_id) {
      const [party, order] = await Promise.all([
        lead.counterparty_id ? api('GET', `/api/counterparties/${path(lead.counterparty_id)}`).catch(() => null) : null,
        lead.order_id ? api('GET', `/api/orders/${path(lead.order_id)}`).catch(() => null) : null,
      ]);
      set(convertArea, h('section', { class: 'block' }, h('h3', null, 'Лид конвертирован'),
        h('p', { class: 'links' },
          lead.counterparty_id ? h('a', { class: 'btn', href: `#/counterparty/${path(lead.counterparty_id)}` }, 'Контрагент', party?.name ? [': ', h('bdi', null, party.name)] : null) : null,
          lead.order_id ? h('a', { class: 'btn', href: `#/order/${path(lead.order_id)}` }, 'Заказ', order?.number ? [' ', h('bdi', null, order.number)] : null) : null)));
      return;
    }
    const go = button('Конвертировать в контрагента и заказ', async () => {
      go.disabled = true;
      shell.error.textContent = '';
      try {
        await api('POST', `/api/leads/${path(id)}/convert`);
        toast('Созданы контрагент и заказ');
        refresh();
        refreshList();
      } catch (e) {
        shell.error.textContent = sentence(e);
        go.disabled = false;
      }
    }, 'primary wide');
    set(convertArea, go);
  }

  async function refresh() {
    try {
      draw(await api('GET', `/api/leads/${path(id)}`));
    } catch (e) {
      if (alive()) {
        if (!lead) shell.title.textContent = 'Лид не открылся';
        shell.error.textContent = sentence(e);
      }
    }
  }

  return { el: shell.el, refresh };
}

function addItemForm(leadId, done, error) {
  const input = (name, label, attrs = {}) => {
    const field = h('input', { id: `item-${name}-${leadId}`, name, ...attrs });
    return [field, h('label', { class: `field f-${name}`, for: field.id }, h('span', null, label), field)];
  };
  const [name, nameLabel] = input('name', 'Наименование', { required: true, maxlength: '200', autocomplete: 'off' });
  const [sku, skuLabel] = input('sku', 'Артикул', { maxlength: '64', autocomplete: 'off' });
  const [qty, qtyLabel] = input('quantity', 'Количество', { inputmode: 'decimal', value: '1', required: true });
  const [price, priceLabel] = input('price', 'Цена', { inputmode: 'decimal', required: true, placeholder: '0,00' });
  const submit = h('button', { type: 'submit', class: 'btn' }, 'Добавить товар');
  const el = h('form', { class: 'add-item', novalidate: true, onsubmit: async (e) => {
    e.preventDefault();
    error.textContent = '';
    const q = decimal(qty.value);
    const p = decimal(price.value);
    if (!name.value.trim()) return void (error.textContent = 'Укажите наименование товара.');
    if (!q || Number(q) <= 0) return void (error.textContent = 'Количество — число больше нуля, например 2 или 1,5.');
    if (p === null) return void (error.textContent = 'Цена — число, например 150 или 99,90.');
    submit.disabled = true;
    try {
      const lead = await api('POST', `/api/leads/${path(leadId)}/items`, { name: name.value.trim(), sku: sku.value.trim() || null, quantity: q, price: p });
      name.value = '';
      sku.value = '';
      qty.value = '1';
      price.value = '';
      done(lead);
      name.focus();
    } catch (e2) {
      error.textContent = `Товар не добавлен. ${sentence(e2)}`;
    } finally {
      submit.disabled = false;
    }
  } }, h('fieldset', null, h('legend', null, 'Новый товар'), nameLabel, skuLabel, qtyLabel, priceLabel, submit));
  return { el };
}

function counterpartyView(id) {
  const shell = docShell('Контрагент', '#/counterparties', false);
  const alive = () => S.doc?.key === `counterparty:${id}`;
  async function refresh() {
    try {
      const c = await api('GET', `/api/counterparties/${path(id)}`);
      if (!alive()) return;
      const profile = safeUrl(c.vk_profile);
      set(shell.title, h('bdi', null, c.name || 'Контрагент'));
      set(shell.body, 
        fields([
          ['Имя', h('bdi', null, c.name || '—')],
          ['Профиль VK', profile ? externalLink(profile, profile.href) : '—'],
          c.lead_id ? ['Лид', h('a', { href: `#/lead/${path(c.lead_id)}` }, 'Открыть лид')] : null,
          c.order_id ? ['Заказ', h('a', { href: `#/order/${path(c.order_id)}` }, 'Открыть заказ')] : null,
        ]),
        communication(c.communication, null));
    } catch (e) {
      if (alive()) shell.error.textContent = sentence(e);
    }
  }
  return { el: shell.el, refresh };
}

function orderView(id) {
  const shell = docShell('Заказ', '#/orders', false);
  const alive = () => S.doc?.key === `order:${id}`;
  async function refresh() {
    try {
      const o = await api('GET', `/api/orders/${path(id)}`);
      if (!alive()) return;
      const party = o.counterparty_id ? await api('GET', `/api/counterparties/${path(o.counterparty_id)}`).catch(() => null) : null;
      set(shell.title, 'Заказ ', h('bdi', null, o.number || ''));
      set(shell.body, 
        fields([
          ['Номер', h('bdi', null, o.number || '—')],
          ['Статус', h('span', { class: 'chip' }, ORDER_STATUS[o.status] || o.status || '—')],
          o.counterparty_id ? ['Контрагент', h('a', { href: `#/counterparty/${path(o.counterparty_id)}` }, party?.name ? h('bdi', null, party.name) : 'Открыть контрагента')] : null,
          o.lead_id ? ['Лид', h('a', { href: `#/lead/${path(o.lead_id)}` }, 'Открыть лид')] : null,
        ]),
        h('section', { class: 'block', 'aria-label': 'Товары' }, h('h3', null, 'Товары'), goodsTable(o.items || [], o.currency, false),
          h('p', { class: 'total' }, 'Итого: ', h('strong', null, money(o.total, o.currency)))),
        communication(o.communication, null));
    } catch (e) {
      if (alive()) shell.error.textContent = sentence(e);
    }
  }
  return { el: shell.el, refresh };
}

// Lists of leads, counterparties and orders with a search by name.
function docsList(kind) {
  const spec = {
    leads: { title: 'Лиды', one: 'lead', empty: 'Лидов пока нет. Каждый новый диалог из VK создаёт лид.' },
    counterparties: { title: 'Контрагенты', one: 'counterparty', empty: 'Контрагентов пока нет. Они появятся, когда лид конвертируют в контрагента и заказ.' },
    orders: { title: 'Заказы', one: 'order', empty: 'Заказов пока нет. Они появятся, когда лид конвертируют в контрагента и заказ.' },
  }[kind];
  const search = h('input', { type: 'search', id: `search-${kind}`, placeholder: 'Поиск по имени', autocomplete: 'off' });
  const rows = h('ul', { class: 'rows' }, h('li', { class: 'empty' }, 'Загрузка…'));
  const error = h('p', { class: 'error', role: 'alert' });
  const more = button('Показать ещё', () => load(true), 'more', { hidden: true });
  const el = h('div', { class: 'list' }, h('h1', { class: 'pane-title' }, spec.title),
    h('form', { class: 'search', role: 'search', onsubmit: (e) => { e.preventDefault(); load(false); } },
      h('label', { for: search.id, class: 'sr-only' }, 'Поиск по имени'), search),
    error, rows, more);
  let items = [];
  let next = null;
  let timer = 0;
  search.addEventListener('input', () => { clearTimeout(timer); timer = setTimeout(() => load(false), 250); });

  function row(x) {
    let name;
    let sub;
    if (kind === 'leads') {
      name = x.title || personName(x.first_name, x.last_name) || 'Лид';
      sub = [LEAD_STATUS[x.status] || x.status, x.total != null ? money(x.total, x.currency) : null];
    } else if (kind === 'counterparties') {
      name = x.name || 'Контрагент';
      sub = [x.vk_user_id ? `VK id ${x.vk_user_id}` : null];
    } else {
      name = `Заказ ${x.number || ''}`;
      sub = [x.counterparty_name || x.name || null, ORDER_STATUS[x.status] || x.status, x.total != null ? money(x.total, x.currency) : null];
    }
    const when = x.created_at || x.communication?.started_at;
    return h('li', { class: 'row' }, h('a', { class: 'row-link', href: `#/${spec.one}/${path(x.id)}`, 'aria-current': S.route.id === x.id ? 'page' : null },
      h('span', { class: 'row-top' }, h('bdi', { class: 'row-name' }, name), when ? timeEl(when) : null),
      h('span', { class: 'row-last' }, sub.filter(Boolean).join(' · '))));
  }

  function draw() {
    if (!items.length) {
      const q = search.value.trim();
      set(rows, error.textContent ? '' : h('li', { class: 'empty' }, q ? `По запросу «${q}» ничего не найдено.` : spec.empty));
    } else {
      set(rows, ...items.map(row));
    }
    more.hidden = !next;
  }

  async function load(more) {
    const q = search.value.trim();
    const after = more && next ? `&after=${encodeURIComponent(next)}` : '';
    try {
      const page = await api('GET', `/api/${kind}?q=${encodeURIComponent(q)}&limit=50${after}`);
      if (q !== search.value.trim()) return;
      const got = Array.isArray(page[kind]) ? page[kind] : [];
      items = more ? items.concat(got) : got;
      next = page.next || null;
      error.textContent = '';
    } catch (e) {
      error.textContent = `Список не загрузился. ${sentence(e, { 'not-an-employee': ADMIN_NOTE })}`;
    }
    draw();
  }

  return { el, refresh: () => load(false), select: draw };
}

// ---------------------------------------------------------------------------------------
// «Интеграция с VK сообществом»

/// A 32-character secret from the browser's cryptographic random source.
function generateSecret() {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
  let out = '';
  while (out.length < 32) {
    for (const byte of crypto.getRandomValues(new Uint8Array(48))) {
      if (byte < 248 && out.length < 32) out += alphabet[byte % 62];
    }
  }
  return out;
}

async function copy(text, input) {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    input?.select();
    document.execCommand?.('copy');
  }
  toast('Скопировано');
}

function copyField(id, label, value, copyLabel = 'Копировать') {
  const input = h('input', { id, readonly: true, value, class: 'mono' });
  return h('div', { class: 'field' }, h('label', { for: id }, label),
    h('div', { class: 'with-button' }, input, button(copyLabel, () => copy(input.value, input), '', { 'aria-label': `${copyLabel}: ${label}` })));
}

function settingsView() {
  const error = h('p', { class: 'error', role: 'alert' });
  const status = h('p', { class: 'saved', role: 'status' });
  const connect = h('div', null, h('p', null, 'Загрузка…'));
  const channel = h('div');
  const people = h('div');
  const el = h('div', { class: 'settings' },
    h('h1', { class: 'pane-title' }, 'Интеграция с VK сообществом'),
    h('section', { class: 'block', 'aria-labelledby': 's-connect' }, h('h2', { id: 's-connect' }, 'Подключение Callback API'),
      h('p', { class: 'hint' }, 'В сообществе VK откройте «Управление → Дополнительно → Работа с API → Callback API». Вставьте туда адрес и секретный ключ, сохраните эту страницу и нажмите «Подтвердить» в VK.'),
      connect, error, status),
    h('section', { class: 'block', 'aria-labelledby': 's-channel' }, h('h2', { id: 's-channel' }, 'Состояние канала'), channel),
    h('section', { class: 'block', 'aria-labelledby': 's-people' }, h('h2', { id: 's-people' }, 'Сотрудники открытых линий'), people));
  let settings = null;
  let groupOut = null;
  let resetButton = null;
  const alive = () => S.route.view === 'settings' && el.isConnected;

  function drawGroupId() {
    if (!groupOut) return;
    groupOut.textContent = settings.group_id != null ? String(settings.group_id) : 'появится после подтверждения в VK';
    resetButton.disabled = settings.group_id == null;
  }

  // On a change elsewhere (VK confirmed, an employee added): what is not being typed.
  async function live() {
    drawChannel();
    try {
      const fresh = await api('GET', '/api/settings');
      if (!alive() || !settings) return;
      const peopleChanged = JSON.stringify(fresh.employees) !== JSON.stringify(settings.employees);
      settings = { ...settings, group_id: fresh.group_id, employees: fresh.employees };
      drawGroupId();
      if (peopleChanged) drawPeople();
    } catch {
      // The next change tries again.
    }
  }

  function drawForm() {
    const fixed = new Set(settings.fixed_by_platform || settings.fixed || []);
    const text = (name, label, { wrap, ...attrs } = {}) => {
      const input = h('input', { id: `set-${name}`, name, autocomplete: 'off', spellcheck: 'false', disabled: fixed.has(name), ...attrs });
      return [input, h('div', { class: 'field' }, h('label', { for: input.id }, label), wrap ? wrap(input) : input,
        fixed.has(name) ? h('p', { class: 'hint' }, 'Задано в настройках платформы и меняется там.') : null)];
    };
    const mask = (value) => (value ? `Сохранён: ${value}` : 'не задан');
    const generate = button('Сгенерировать', () => {
      secret.value = generateSecret();
      secretHint.textContent = 'Новый ключ виден, пока вы не нажали «Сохранить». Скопируйте его в настройки Callback API в VK.';
    }, '', { disabled: fixed.has('secret') });
    const secretHint = h('p', { class: 'hint' }, settings.secret ? 'Сохранённый ключ показан маской. Оставьте поле пустым, чтобы не менять его.' : 'Ключ ещё не задан: сгенерируйте его или придумайте сами (до 50 символов).');
    const [secret, secretField] = text('secret', 'Секретный ключ', { placeholder: mask(settings.secret), maxlength: '50', class: 'mono', wrap: (i) => h('div', { class: 'with-button' }, i, generate) });
    secretField.append(secretHint);
    const [token, tokenField] = text('access_token', 'Ключ доступа', { type: 'password', placeholder: mask(settings.access_token), class: 'mono' });
    tokenField.append(h('p', { class: 'hint' }, 'Ключ сообщества с доступом к сообщениям: «Работа с API → Ключи доступа». Сохранённый ключ не показывается.'));
    const [confirmation, confirmationField] = text('confirmation', 'Строка подтверждения', { value: settings.confirmation || '', class: 'mono' });
    const [groupName, groupNameField] = text('group_name', 'Название группы', { value: settings.group_name || '' });
    groupNameField.append(h('p', { class: 'hint' }, 'Становится источником лидов и началом их названий.'));
    const reset = button('Сбросить', () => confirmAction('Сбросить ID сообщества?',
      'Интеграция перестанет принимать события, пока VK снова не подтвердит адрес. Нужно, чтобы перейти на другое сообщество.',
      'Сбросить', async () => {
        settings = await api('DELETE', '/api/settings/group-id');
        toast('ID сообщества сброшен');
        drawGroupId();
      }, 'danger'), 'small', { 'aria-label': 'Сбросить ID сообщества' });
    groupOut = h('output', { class: 'mono readonly', 'aria-labelledby': 'set-group-id-label' });
    resetButton = reset;
    drawGroupId();
    const groupId = h('div', { class: 'field' }, h('span', { class: 'label', id: 'set-group-id-label' }, 'ID сообщества'),
      h('div', { class: 'with-button' }, groupOut, reset));
    const save = h('button', { type: 'submit', class: 'btn primary' }, 'Сохранить');
    const form = h('form', { class: 'settings-form', novalidate: true, onsubmit: async (e) => {
      e.preventDefault();
      error.textContent = '';
      status.textContent = '';
      const update = {};
      if (secret.value.trim() && !fixed.has('secret')) update.secret = secret.value.trim();
      if (token.value.trim() && !fixed.has('access_token')) update.access_token = token.value.trim();
      if (confirmation.value.trim() !== (settings.confirmation || '') && !fixed.has('confirmation')) update.confirmation = confirmation.value.trim();
      if (groupName.value.trim() !== (settings.group_name || '') && !fixed.has('group_name')) {
        if (!groupName.value.trim()) return void (error.textContent = 'Укажите название группы.');
        update.group_name = groupName.value.trim();
      }
      if (!Object.keys(update).length) return void (status.textContent = 'Изменений нет — сохранять нечего.');
      save.disabled = true;
      try {
        settings = await api('PUT', '/api/settings', update);
        status.textContent = 'Сохранено.';
        toast('Настройки сохранены');
        drawForm();
      } catch (e2) {
        error.textContent = `Не сохранено. ${sentence(e2)}`;
      } finally {
        save.disabled = false;
      }
    } },
    copyField('set-callback', 'Адрес', settings.callback_url || `${location.origin}/settings/integrations/vk-group/call-back`),
    secretField, tokenField, confirmationField, groupNameField, groupId, h('div', { class: 'form-actions' }, save));
    set(connect, form);
  }

  async function drawChannel() {
    try {
      const c = await api('GET', '/api/channel');
      if (!alive()) return;
      const waiting = Number(c.messages_waiting) || 0;
      set(channel, fields([
        ['Подтверждение VK', h('span', { class: `chip ${c.confirmed ? 'ok' : 'warn'}` }, c.confirmed ? 'Подтверждено' : 'Ещё не подтверждено')],
        ['Последнее событие VK', c.last_event_at ? timeEl(c.last_event_at, fullTime) : 'событий ещё не было'],
        ['Ждут отправки в VK', waiting ? `${waiting} сообщ.` : 'нет'],
      ]));
    } catch (e) {
      set(channel, h('p', { class: 'error' }, `Состояние не загрузилось. ${sentence(e)}`));
    }
  }

  async function drawPeople() {
    await loadEmployees();
    if (!alive()) return;
    const listed = new Set(settings?.employees || []);
    const nameInput = h('input', { id: 'new-employee', maxlength: '200', autocomplete: 'off', required: true });
    const peopleError = h('p', { class: 'error', role: 'alert' });
    const create = h('button', { type: 'submit', class: 'btn primary' }, 'Добавить сотрудника');
    const form = h('form', { class: 'new-employee', novalidate: true, onsubmit: async (e) => {
      e.preventDefault();
      const name = nameInput.value.trim();
      if (!name) return void (peopleError.textContent = 'Введите имя сотрудника.');
      create.disabled = true;
      peopleError.textContent = '';
      try {
        const made = await api('POST', '/api/employees', { name });
        settings = await api('PUT', '/api/settings', { employees: [...listed, made.id] });
        nameInput.value = '';
        toast(`Сотрудник добавлен: ${made.name}`);
        drawPeople();
      } catch (e2) {
        peopleError.textContent = `Сотрудник не добавлен. ${sentence(e2)}`;
      } finally {
        create.disabled = false;
      }
    } }, h('div', { class: 'field' }, h('label', { for: 'new-employee' }, 'Имя нового сотрудника'), h('div', { class: 'with-button' }, nameInput, create)));

    const rows = [...S.employees].map(([eid, name]) => {
      const linkArea = h('div', { class: 'sign-in-link' });
      const toggle = h('input', { type: 'checkbox', id: `listed-${eid}`, checked: listed.has(eid) });
      toggle.addEventListener('change', async () => {
        toggle.disabled = true;
        peopleError.textContent = '';
        const next = toggle.checked ? [...listed, eid] : [...listed].filter((x) => x !== eid);
        try {
          settings = await api('PUT', '/api/settings', { employees: next });
          toast(toggle.checked ? `${name} работает в открытых линиях` : `${name} убран(а) из открытых линий`);
          drawPeople();
        } catch (e) {
          toggle.checked = !toggle.checked;
          toggle.disabled = false;
          peopleError.textContent = sentence(e);
        }
      });
      const link = button('Ссылка для входа', async (event) => {
        const target = event.currentTarget;
        target.disabled = true;
        try {
          const made = await api('POST', `/api/employees/${path(eid)}/sign-in-link`);
          set(linkArea, copyField(`link-${eid}`, `Ссылка для входа: ${name}`, made.link, 'Копировать ссылку'),
            h('p', { class: 'hint' }, 'Ссылка действует один раз. Новая ссылка завершает прежние сеансы этого сотрудника.'));
        } catch (e) {
          peopleError.textContent = sentence(e);
        } finally {
          target.disabled = false;
        }
      }, 'small', { 'aria-label': `Ссылка для входа: ${name}` });
      const remove = button('Удалить', () => confirmAction('Удалить сотрудника?',
        `${name} больше не сможет войти, а диалоги, закреплённые за ним, нужно будет передать другим.`, 'Удалить', async () => {
          await api('DELETE', `/api/employees/${path(eid)}`);
          if (listed.has(eid)) settings = await api('GET', '/api/settings').catch(() => settings);
          toast(`Сотрудник удалён: ${name}`);
          drawPeople();
        }, 'danger'), 'small ghost', { 'aria-label': `Удалить: ${name}` });
      return h('li', { class: 'person' },
        h('div', { class: 'person-head' }, h('bdi', { class: 'person-name' }, name),
          h('label', { class: 'switch', for: toggle.id }, toggle, 'Работает в открытых линиях'),
          h('span', { class: 'person-actions' }, link, remove)),
        linkArea);
    });
    set(people, form, peopleError,
      rows.length ? h('ul', { class: 'people' }, rows) : h('p', { class: 'muted' }, 'Сотрудников пока нет. Добавьте их: каждый получит ссылку для входа.'));
  }

  async function load() {
    try {
      settings = await api('GET', '/api/settings');
      if (!alive()) return;
      drawForm();
      drawPeople();
    } catch (e) {
      set(connect, h('p', { class: 'error' }, `Настройки не загрузились. ${sentence(e)}`));
    }
    drawChannel();
  }

  S.settingsLive = () => { if (alive()) live(); };
  load();
  return { el };
}

// ---------------------------------------------------------------------------------------
// Sign-in and session

function showSignIn(message = '', pending = false) {
  S.me = null;
  stopPolling();
  document.body.classList.add('signed-out');
  $('nav').hidden = true;
  $('signout').hidden = true;
  $('who').textContent = '';
  $('main').dataset.layout = 'signin';
  set($('pane-list'));
  set($('pane-side'));
  S.list = S.chat = S.side = S.doc = null;
  const error = h('p', { class: 'error', role: 'alert' }, message);
  const token = h('input', { id: 'admin-token', type: 'password', autocomplete: 'current-password', required: true });
  const go = h('button', { type: 'submit', class: 'btn primary wide' }, 'Войти');
  const form = h('form', { class: 'signin-form', novalidate: true, onsubmit: async (e) => {
    e.preventDefault();
    if (!token.value.trim()) return void (error.textContent = 'Введите токен администратора.');
    go.disabled = true;
    error.textContent = '';
    try {
      const { me } = await api('POST', '/api/sessions', { admin_token: token.value.trim() });
      token.value = '';
      history.replaceState(null, '', '/#/lines/queue');
      start(me);
    } catch (e2) {
      error.textContent = sentence(e2, { unauthorized: 'Токен не подошёл. Проверьте его и попробуйте ещё раз.' });
      go.disabled = false;
    }
  } }, h('div', { class: 'field' }, h('label', { for: 'admin-token' }, 'Токен администратора'), token), go);
  set($('pane-main'), h('div', { class: 'signin' },
    h('h1', null, 'Вход'),
    pending ? h('p', null, 'Входим по ссылке…') : h('p', { class: 'hint' }, 'Сотрудники входят по ссылке, которую выдаёт администратор в разделе «Интеграция с VK сообществом». Администратор входит по своему токену.'),
    error, pending ? null : form));
  if (!pending) token.focus();
}

function signedOut(error) {
  if (!S.me) return;
  history.replaceState(null, '', '/sign-in');
  showSignIn(sentence(error, { unauthorized: ERRORS['session-ended'] }));
}

async function start(me) {
  S.me = me;
  S.counts = null;
  S.list = S.chat = S.side = S.doc = null;
  document.body.classList.remove('signed-out');
  set($('who'), me.role === 'admin' ? 'Администратор' : h('bdi', null, me.name || ''));
  $('signout').hidden = false;
  set($('pane-main'));
  await loadEmployees();
  buildNav();
  render();
  startPolling();
}

$('signout').addEventListener('click', async () => {
  try {
    await api('DELETE', '/api/sessions/current');
  } catch {
    // Signed out here either way.
  }
  history.replaceState(null, '', '/sign-in');
  showSignIn();
});

// ---------------------------------------------------------------------------------------
// Live: poll /api/changes every second while the tab is visible.

let refreshing = false;
let refreshAgain = false;
async function refreshAll() {
  if (refreshing) return void (refreshAgain = true);
  refreshing = true;
  try {
    await loadEmployees();
    await Promise.all([S.list?.refresh(), S.chat?.refresh(), S.side?.refresh(), S.doc?.refresh()]);
    S.settingsLive?.();
  } finally {
    refreshing = false;
    if (refreshAgain) {
      refreshAgain = false;
      refreshAll();
    }
  }
}

function refreshList() {
  S.list?.refresh();
}

function stopPolling() {
  clearTimeout(S.pollTimer);
  S.polling = false;
}

function startPolling() {
  stopPolling();
  S.etag = null;
  S.polling = true;
  poll();
}

async function poll() {
  clearTimeout(S.pollTimer);
  if (!S.polling || !S.me || document.visibilityState !== 'visible') return;
  try {
    const response = await fetch('/api/changes', {
      credentials: 'same-origin', cache: 'no-store', headers: S.etag ? { 'If-None-Match': S.etag } : {},
    });
    if (response.status === 200) {
      const etag = response.headers.get('ETag');
      const first = S.etag === null;
      S.etag = etag || '';
      if (!first) refreshAll();
    } else if (response.status === 401) {
      let code = 'session-ended';
      try {
        code = (await response.json()).error.code || code;
      } catch {
        // The sentence of an ended session.
      }
      signedOut(new ApiError(code === 'unauthorized' ? 'session-ended' : code, 401));
      return;
    }
  } catch {
    // Offline: try again on the next tick.
  }
  if (S.polling && document.visibilityState === 'visible') S.pollTimer = setTimeout(poll, 1000);
}

document.addEventListener('visibilitychange', () => {
  if (document.visibilityState === 'visible' && S.polling) {
    poll();
    refreshAll();
  } else {
    clearTimeout(S.pollTimer);
  }
});

// "ждёт 12 мин" and the times move on without changes.
setInterval(() => { if (S.me && document.visibilityState === 'visible') S.list?.select?.(); }, 30000);

window.addEventListener('hashchange', () => { if (S.me) render(); });

// ---------------------------------------------------------------------------------------
// Start: a sign-in link (/sign-in#<code>), a session, or the sign-in screen.

async function boot() {
  const hash = location.hash.slice(1);
  if (location.pathname === '/sign-in' && hash && !hash.startsWith('/')) {
    // The code leaves the address bar (and the history) before anything else happens.
    history.replaceState(null, '', '/sign-in');
    let code = hash;
    try {
      code = decodeURIComponent(hash);
    } catch {
      // Used as it is.
    }
    showSignIn('', true);
    try {
      const { me } = await api('POST', '/api/sessions', { code });
      history.replaceState(null, '', '/#/lines/queue');
      start(me);
    } catch (e) {
      showSignIn(sentence(e, { unauthorized: ERRORS['sign-in-link-spent'] }));
    }
    return;
  }
  try {
    const me = await api('GET', '/api/me');
    if (location.pathname !== '/') history.replaceState(null, '', `/${location.hash || '#/lines/queue'}`);
    start(me);
  } catch (e) {
    if (e.status === 401) {
      showSignIn();
    } else {
      $('main').dataset.layout = 'signin';
      set($('pane-main'), h('div', { class: 'signin' }, h('h1', null, 'Нет связи'), h('p', { class: 'error', role: 'alert' }, sentence(e)),
        button('Повторить', boot, 'primary')));
    }
  }
}

boot();
