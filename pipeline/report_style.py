"""The report's stylesheet (inline in report.html; system fonts, no network)."""
CSS = """
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 -apple-system,BlinkMacSystemFont,"Segoe UI",Roboto,"Helvetica Neue",Arial,
 "Noto Sans",sans-serif;color:#1f2933;background:#f5f7fa}
header{background:#1f2d3d;color:#fff;padding:18px 32px 0;position:sticky;top:0;z-index:5}
header h1{margin:0;font-size:22px;font-weight:600}
header .sub{color:#b8c4d0;font-size:13px;margin-top:2px;word-break:break-all}
nav{display:flex;gap:18px;margin-top:10px}
nav a{color:#dce6f0;text-decoration:none;padding:6px 0 8px;border-bottom:3px solid transparent}
nav a:hover{border-bottom-color:#5b8def}
main{max-width:1240px;margin:0 auto;padding:8px 32px 40px}
section{background:#fff;border-radius:10px;box-shadow:0 1px 3px rgba(0,0,0,.08);padding:18px 24px;
 margin:18px 0;scroll-margin-top:100px}
h2{font-size:18px;margin:0 0 12px;font-weight:600}
h3{font-size:15px;margin:18px 0 6px;display:flex;align-items:center;gap:8px;scroll-margin-top:100px}
h3 .count{margin-left:auto;font-weight:400;color:#52606d}
code{font:12.5px/1.3 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
.muted{color:#7b8794}.small{font-size:12px}
.kpis{display:grid;grid-template-columns:repeat(4,1fr);gap:12px;margin-bottom:14px}
.kpi{background:#f0f4f8;border-radius:8px;padding:10px 14px}
.kpi .k{color:#52606d;font-size:12px;text-transform:uppercase;letter-spacing:.04em}
.kpi .n{font-size:26px;font-weight:600}.kpi .p{color:#52606d}
.stack{display:flex;height:22px;border-radius:6px;overflow:hidden;background:#e4e7eb}
.seg{height:100%}
.legend{display:flex;flex-wrap:wrap;gap:6px 14px;margin:8px 0;font-size:12.5px}
.lg i,.dot,.sw{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:5px;
 vertical-align:baseline}
.ok{color:#2e7d32;font-weight:600}.bad{color:#c62828;font-weight:700}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:6px 8px;border-bottom:1px solid #e4e7eb;vertical-align:top}
th{font-weight:600;color:#52606d;font-size:12.5px}
td.r,th.r{text-align:right;white-space:nowrap}
table.funnel td{vertical-align:middle}
table.funnel tr.zero td{color:#9aa5b1}
table.funnel a{color:inherit}
.barcell{width:45%}
.bar{height:14px;background:#4a7fc1;border-radius:3px;min-width:1px}
table.funnel tr.kept td{font-weight:600;border-top:2px solid #cbd2d9}
table.funnel tr.kept .bar{background:#2e8b57}
.badge{display:inline-block;font-size:11px;font-weight:700;padding:1px 7px;border-radius:10px;
 background:#e4e7eb;color:#3e4c59;letter-spacing:.03em}
.badge.ok{background:#e3f4e6;color:#2e7d32}.badge.na{background:#fde2e1;color:#b71c1c}
.badge.warn{background:#fff3cd;color:#8a6d1f}
.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(540px,1fr));gap:14px}
figure{margin:0;border:1px solid #e4e7eb;border-radius:8px;padding:10px}
figcaption{font-weight:600;margin-bottom:4px}
svg.chart{width:100%;height:auto;display:block}
svg.chart text.v{font-size:11px;text-anchor:middle;fill:#3e4c59}
svg.chart text.l{font-size:11px;fill:#52606d}
.cols{display:grid;grid-template-columns:repeat(3,1fr);gap:20px}
table.kv th{width:50%}
.gallery{border-top:1px solid #e4e7eb;padding-bottom:6px}
.gallery.empty h3{color:#9aa5b1}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(176px,1fr));gap:12px}
.card{border:1px solid #e4e7eb;border-radius:8px;padding:8px;background:#fbfcfd;overflow:hidden}
.card img,.noimg,.pair img{display:block;width:100%;height:128px;object-fit:contain;
 background:#f3f5f7;border-radius:4px}
.noimg{display:flex;align-items:center;justify-content:center;color:#9aa5b1;font-size:12px;
 background:#eef1f4}
.txt{margin-top:6px;font-weight:500;overflow-wrap:anywhere}
.raw{margin-top:3px;font-size:12px;color:#7b5e00;overflow-wrap:anywhere}
.meta{font-size:11.5px;color:#7b8794;overflow-wrap:anywhere}
.pairs{display:grid;grid-template-columns:repeat(auto-fill,minmax(280px,1fr));gap:12px}
.pair{display:grid;grid-template-columns:1fr 1fr;gap:6px;border:1px solid #e4e7eb;border-radius:8px;
 padding:8px}.pair .meta{grid-column:1/3}
pre{background:#f0f4f8;padding:12px;border-radius:6px;overflow:auto;font-size:12px}
footer{text-align:center;color:#9aa5b1;font-size:12px;padding:10px 0 30px}
"""
