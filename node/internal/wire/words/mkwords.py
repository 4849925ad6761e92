import re, collections
words=[w.strip() for w in open('x/usr/share/dict/american-english',encoding='utf-8',errors='ignore')]
allset=set(words)
lower=[w for w in words if re.fullmatch(r'[a-z]+',w)]
block=set("""anal anus arse bitch boob bosom breast butt crap cunt damn dick dildo fuck homo hell kill nazi nude orgy penis piss porn rape sexy sex shit slut tits turd whore wank drug dead death die dying gun rapist suicide murder corpse coke opium heroin pimp""".split())
# candidates: length 4..7, not a plural-looking ('s' ending whose stem exists), not -ed/-ing forms of existing stems
def derived(w):
    for suf in ('s','es','ed','ing','er','ers','ly','est','ness'):
        if w.endswith(suf) and (w[:-len(suf)] in allset or w[:-len(suf)]+'e' in allset):
            return True
    return False
cand=[w for w in set(lower) if 4<=len(w)<=6 and not derived(w) and w not in block and not any(b in w for b in ('fuck','shit','cunt','nazi','porn','rape'))]
lset=set(lower)
# score: number of dictionary forms (w+suffix) present
sufs=['s','es','ed','d','ing','er','ers','ly','y','ful','ness']
def score(w):
    return sum((w+s) in lset for s in sufs) + (('%ss'%w[:-1]+'ing') in lset)
byprefix=collections.defaultdict(list)
for w in cand: byprefix[w[:4]].append(w)
chosen=[]
for p,ws in byprefix.items():
    ws.sort(key=lambda w:(-score(w),len(w),w))
    chosen.append(ws[0])
# no word a prefix of another chosen word is guaranteed by unique 4-prefix for len>=4 except 4-letter word equal prefix of a longer word with same prefix -> impossible (one per prefix)
chosen.sort(key=lambda w:(-score(w),len(w),w))
print(len(chosen), [ (w,score(w)) for w in chosen[2040:2050]])
final=sorted(chosen[:2048])
open('words.txt','w').write('\n'.join(final)+'\n')
