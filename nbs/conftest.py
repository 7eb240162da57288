"""pytest --nbval over the committed notebooks.

`nbdev_clean` blanks every execution count, and nbval treats a cell with no execution count as "never run" (and then
fails it if it has outputs). The notebooks ARE committed executed, top to bottom, so give each code cell its count
back before nbval looks at it; outputs are then compared as usual.
"""
def pytest_collection_modifyitems(items):
    for n, item in enumerate(items, 1):
        cell = getattr(item, 'cell', None)
        if cell is not None and cell.get('cell_type') == 'code' and cell.get('execution_count') is None:
            cell['execution_count'] = n
