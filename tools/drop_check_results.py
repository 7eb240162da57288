"""Drop the `True`/`False` result that check cells showed before `check` returned a quiet verdict (issue 20).

    python tools/drop_check_results.py nbs/0*_*.ipynb nbs/1*_*.ipynb

Edits only the JSON of the check cells (`check('name', my_name)`): removes their `execute_result` output that is
exactly `True` or `False`, and changes nothing else (re-executing the notebook would give the same outputs)."""
import json, re, sys
from pathlib import Path

CHECK = re.compile(r"check\('\w+', \w+\)$")

def drop(path):
    text = Path(path).read_text()
    nb, n = json.loads(text), 0
    for c in nb['cells']:
        if c['cell_type'] != 'code' or not CHECK.match(''.join(c['source']).strip()): continue
        keep = [o for o in c.get('outputs', []) if not (o['output_type'] == 'execute_result'
                and ''.join(o.get('data', {}).get('text/plain', [])) in ('True', 'False'))]
        n += len(c['outputs']) - len(keep)
        c['outputs'] = keep
    if n: Path(path).write_text(json.dumps(nb, indent=1, ensure_ascii=False) + '\n')
    return n

if __name__ == '__main__':
    for p in sys.argv[1:]: print(f"{p}: {drop(p)} result(s) dropped")
