import { Rng } from './rng';

/*
 * Words, names and subjects for the corpus. Plain data plus small generators; the prose is
 * nonsense with a realistic shape (sentences, paragraphs, 72-column lines, quoted replies).
 */

const EN = (
  'the project meeting report budget quarter team customer release server backup schedule update review ' +
  'draft proposal contract invoice delivery migration cluster storage network latency incident ticket ' +
  'deadline milestone roadmap feedback agenda minutes slides numbers forecast revenue cost estimate ' +
  'please find attached below above thanks regards let me know if you have any questions about this ' +
  'we should could would will can need want think discuss confirm check send share prepare finish start ' +
  'today tomorrow next week monday tuesday wednesday thursday friday morning afternoon call office remote ' +
  'a an and or but with for from into over after before during while because since so then also just ' +
  'new old first last final current previous important urgent quick short long detailed updated revised ' +
  'data mailbox account domain folder message archive volume retention policy restore snapshot scan ' +
  'is are was were be been has have had do does did not all some more most other such only same'
).split(' ');

const DE = (
  'der die das und oder aber mit für über nach vor während weil seit auch noch schon bitte danke ' +
  'Besprechung Bericht Angebot Rechnung Lieferung Termin Kunde Projekt Übersicht Änderung Prüfung ' +
  'Zusammenfassung Entwurf Vertrag Größe Maßnahme Straße Grüße Woche Montag Dienstag Mittwoch Donnerstag ' +
  'Freitag morgen heute nächste letzte wichtig dringend kurz ausführlich überarbeitet können müssen ' +
  'sollten würden wir ihr Sie bitte prüfen senden schicken besprechen bestätigen fertig beginnen ist sind war'
).split(' ');

const FR = (
  'le la les un une et ou mais avec pour sur après avant pendant parce que aussi déjà merci réunion ' +
  'rapport devis facture livraison rendez-vous client projet résumé modification vérification contrat ' +
  'équipe été prévu à côté très important urgent semaine prochaine dernière envoyer préparer confirmer'
).split(' ');

export type Lang = 'en' | 'de' | 'fr';
const WORDS: Record<Lang, ReadonlyArray<string>> = { en: EN, de: DE, fr: FR };

const capitalize = (s: string): string => s.charAt(0).toUpperCase() + s.slice(1);

const freshSentence = (rng: Rng, lang: Lang): string => {
  const n = rng.int(5, 19);
  const words: string[] = [];
  for (let i = 0; i < n; i++) words.push(rng.pick(WORDS[lang]));
  if (n > 9 && rng.chance(0.4)) words[rng.int(3, n - 3)] += ',';
  return capitalize(words.join(' ')) + rng.weighted([['.', 8], ['?', 1], ['!', 1]] as const);
};

// Bodies pick from a fixed pool of sentences per language: building each sentence word by word
// for every message was the generator's hottest loop.
const SENTENCES = new Map<Lang, string[]>();
export const sentence = (rng: Rng, lang: Lang): string => {
  let pool = SENTENCES.get(lang);
  if (pool === undefined) {
    const r = Rng.derive('corpus-sentences', lang);
    pool = Array.from({ length: 2048 }, () => freshSentence(r, lang));
    SENTENCES.set(lang, pool);
  }
  return pool[rng.int(0, pool.length)] as string;
};

export const paragraph = (rng: Rng, lang: Lang): string => {
  const n = rng.int(1, 6);
  const s: string[] = [];
  for (let i = 0; i < n; i++) s.push(sentence(rng, lang));
  return s.join(' ');
};

const PARAGRAPHS = new Map<Lang, string[]>();
/** A paragraph already wrapped at 72 columns, from a fixed pool per language. */
export const wrappedParagraph = (rng: Rng, lang: Lang): string => {
  let pool = PARAGRAPHS.get(lang);
  if (pool === undefined) {
    const r = Rng.derive('corpus-paragraphs', lang);
    pool = Array.from({ length: 1024 }, () => wrap(paragraph(r, lang)));
    PARAGRAPHS.set(lang, pool);
  }
  return pool[rng.int(0, pool.length)] as string;
};

/** Greedy word wrap (the 72-column habit of mail clients). */
export const wrap = (text: string, width = 72): string => {
  const out: string[] = [];
  for (const para of text.split('\n')) {
    let line = '';
    for (const word of para.split(' ')) {
      if (line !== '' && line.length + 1 + word.length > width) {
        out.push(line);
        line = word;
      } else {
        line = line === '' ? word : line + ' ' + word;
      }
    }
    out.push(line);
  }
  return out.join('\n');
};

export interface Person {
  readonly name: string;
  readonly address: string;
}

/** Local users in the order accounts are made; the first five match shared/services/mail-stack.sh. */
export const LOCAL_USERS: ReadonlyArray<readonly [string, string]> = [
  ['alice', 'Alice Andersen'],
  ['bob', 'Bob Brenner'],
  ['carol', 'Carol Castellano'],
  ['dave', 'Dave Dubois'],
  ['erin', 'Erin Eriksson'],
  ['frank', 'Frank Fröhlich'],
  ['grace', 'Grace Grünewald'],
  ['heidi', 'Heidi Hämäläinen'],
  ['ivan', 'Ivan Ivanović'],
  ['judy', 'Judy Jiménez'],
  ['mallory', 'Mallory Martin'],
  ['niaj', 'Niaj Nakamura'],
  ['olivia', 'Olivia Østergaard'],
  ['peggy', 'Peggy Pereira'],
  ['rupert', 'Rupert Rossi'],
  ['sybil', 'Sybil Søndergaard'],
  ['trent', 'Trent Tanaka'],
  ['victor', 'Victor Vázquez'],
  ['walter', 'Walter Weiß'],
  ['zoe', 'Zoë Zimmermann'],
];

export const DOMAINS: ReadonlyArray<string> = ['alpha.test', 'beta.test', 'gamma.test', 'delta.test', 'epsilon.test', 'zeta.test'];

export const EXTERNAL: ReadonlyArray<Person> = [
  { name: 'José García', address: 'jose.garcia@example.com' },
  { name: 'Zoë Åberg', address: 'zoe.aberg@example.net' },
  { name: '山田 太郎', address: 'taro.yamada@example.jp' },
  { name: 'Дмитрий Иванов', address: 'd.ivanov@example.ru' },
  { name: 'Jürgen Müller', address: 'j.mueller@example.de' },
  { name: 'François Lefèvre', address: 'francois@example.fr' },
  { name: 'Priya Raman', address: 'priya.raman@example.in' },
  { name: 'Mark Thompson', address: 'mark.thompson@example.com' },
  { name: 'Sarah O\'Connor', address: 'sarah.oconnor@example.ie' },
  { name: 'Li Wei', address: 'li.wei@example.cn' },
  { name: 'Ana Souza', address: 'ana.souza@example.com.br' },
  { name: 'Tom Baker', address: 'tom@example.org' },
  { name: 'Billing', address: 'billing@vendor.example' },
  { name: 'GitLab', address: 'gitlab@git.example.com' },
  { name: 'Monitoring', address: 'alerts@monitor.example.net' },
  { name: 'Newsletter Team', address: 'news@shop.example' },
  { name: 'Calendar', address: 'calendar-noreply@example.com' },
  { name: 'HR Department', address: 'hr@corp.example' },
  { name: 'Support Desk', address: 'support@helpdesk.example' },
  { name: 'Kateřina Nováková', address: 'katerina@example.cz' },
];

const SUBJECTS_EN = [
  'Quarterly report', 'Meeting notes', 'Invoice {n}', 'Project update', 'Question about the budget',
  'Release {v} planning', 'Backup schedule change', 'Lunch on {day}?', 'Server maintenance window',
  'Your order #{n} has shipped', 'Weekly newsletter', 'Contract draft for review', 'Travel plans',
  '[ticket #{n}] Mailbox quota exceeded', 'Slides for {day}', 'Re: storage migration', 'Holiday schedule',
  'Alert: disk usage above 90% on srv-{n}', 'Welcome to the team', 'Feedback on the proposal',
  'Minutes of the board meeting', 'Reminder: timesheets due {day}', 'Fwd: customer escalation',
];

const SUBJECTS_INTL = [
  'Besprechung über die Änderungen', 'Grüße aus München', 'Rechnung Nr. {n} – bitte prüfen',
  'Réunion de l’équipe – ordre du jour', 'Devis révisé pour l’été', '会議の議事録 ({n})', '見積書の送付について',
  'Отчёт за квартал', 'Встреча в {day}', '🎉 Launch day!', 'Café meeting ☕ {day}', 'Zusammenfassung Q{q}/2025 — Übersicht',
  'Ελληνικά: νέα έκδοση {v}', 'Präsentation für Kunde Zürich', 'Naïve façade résumé', 'Čtvrtletní zpráva',
];

const fill = (rng: Rng, template: string): string =>
  template
    .replace('{n}', String(rng.int(100, 99999)))
    .replace('{v}', `${rng.int(1, 9)}.${rng.int(0, 20)}`)
    .replace('{q}', String(rng.int(1, 5)))
    .replace('{day}', rng.pick(['Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday']));

/** A subject: ~15% non-ASCII (encoded as RFC 2047 words by the message builder). */
export const subject = (rng: Rng): string => {
  const s = fill(rng, rng.chance(0.15) ? rng.pick(SUBJECTS_INTL) : rng.pick(SUBJECTS_EN));
  return rng.chance(0.25) && !s.startsWith('Re:') ? `Re: ${s}` : s;
};

export const langOf = (rng: Rng, subj: string): Lang =>
  /[äöüßÄÖÜ]/.test(subj) ? 'de' : /[éèçàù’]/.test(subj) ? 'fr' : rng.weighted<Lang>([['en', 8], ['de', 1.5], ['fr', 0.5]]);

/** Text with line structure, for text-like attachments: a fixed pool per kind, sliced on line boundaries. */
export type TextKind = 'prose' | 'csv' | 'log';

interface Pool {
  readonly buf: Buffer;
  readonly lineStarts: number[];
}
const pools = new Map<TextKind, Pool>();

const buildPool = (kind: TextKind): Pool => {
  const rng = Rng.derive('corpus-text-pool', kind);
  const lines: string[] = [];
  let size = 0;
  while (size < 256 * 1024) {
    let line: string;
    if (kind === 'csv') {
      line = [
        `2025-${String(rng.int(1, 13)).padStart(2, '0')}-${String(rng.int(1, 29)).padStart(2, '0')}`,
        rng.pick(EXTERNAL).name.replace(/"/g, ''),
        rng.pick(EN),
        (rng.float() * 10000).toFixed(2),
        rng.pick(['EUR', 'USD', 'CHF']),
      ].join(';');
    } else if (kind === 'log') {
      const t = `2025-11-${String(rng.int(1, 31)).padStart(2, '0')}T${String(rng.int(0, 24)).padStart(2, '0')}:${String(rng.int(0, 60)).padStart(2, '0')}:${String(rng.int(0, 60)).padStart(2, '0')}Z`;
      line = `${t} ${rng.weighted([['INFO', 8], ['WARN', 2], ['ERROR', 1]] as const)} [${rng.pick(['imap', 'lmtp', 'auth', 'backup', 'scan'])}] ${sentence(rng, 'en')} id=${rng.hex(8)}`;
    } else {
      line = wrap(paragraph(rng, rng.weighted<Lang>([['en', 6], ['de', 2], ['fr', 1]]))) + '\n';
    }
    lines.push(line);
    size += Buffer.byteLength(line) + 1;
  }
  const buf = Buffer.from(lines.join('\n') + '\n');
  const lineStarts = [0];
  for (let i = 0; i < buf.length - 1; i++) if (buf[i] === 10) lineStarts.push(i + 1);
  return { buf, lineStarts };
};

/** `n` bytes of line-structured text of `kind` (compressible, not repetitive at small scale). */
export const textBytes = (rng: Rng, kind: TextKind, n: number): Buffer => {
  let pool = pools.get(kind);
  if (pool === undefined) {
    pool = buildPool(kind);
    pools.set(kind, pool);
  }
  const out = Buffer.allocUnsafe(n);
  let pos = 0;
  while (pos < n) {
    const start = pool.lineStarts[rng.int(0, pool.lineStarts.length)] ?? 0;
    const len = Math.min(rng.int(512, 8192), pool.buf.length - start, n - pos);
    pool.buf.copy(out, pos, start, start + len);
    pos += len;
  }
  return out;
};
