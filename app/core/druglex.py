"""A curated lexicon of common drug names (generic, and a few brand names in everyday clinical use).

Written for this project (not copied from a database): the medicines that discharge summaries and clinic
notes name most, by class. Grounding looks words up here instead of guessing from word endings, which
tagged "cholesterol" (-terol), "supine" (-pine) and "undone" (-done). A drug missing from this list is not
checked as a drug (a capitalised brand name is still checked as a term): add names here, lower case.
"""

from __future__ import annotations

_BY_CLASS = {
    "cardiovascular": """
        amiodarone amlodipine apixaban aspirin atenolol atorvastatin benazepril bisoprolol bumetanide candesartan
        captopril carvedilol chlorthalidone clonidine clopidogrel dabigatran digoxin diltiazem dofetilide
        doxazosin edoxaban enalapril eplerenone ezetimibe felodipine flecainide fosinopril furosemide heparin
        enoxaparin dalteparin fondaparinux hydralazine hydrochlorothiazide indapamide irbesartan isosorbide
        labetalol lisinopril losartan metolazone metoprolol midodrine nadolol nebivolol nicardipine nifedipine
        nitroglycerin olmesartan pravastatin prasugrel propranolol quinapril ramipril ranolazine rivaroxaban
        rosuvastatin sacubitril simvastatin sotalol spironolactone telmisartan terazosin ticagrelor torsemide
        valsartan verapamil warfarin lovastatin pitavastatin fenofibrate gemfibrozil niacin alteplase
        dobutamine dopamine epinephrine norepinephrine phenylephrine vasopressin milrinone esmolol adenosine
        procainamide lidocaine mexiletine dronedarone propafenone ivabradine hydrochlorothiazide triamterene
        amiloride acetazolamide mannitol minoxidil methyldopa prazosin tamsulosin
    """,
    "diabetes_endocrine": """
        metformin glipizide glyburide glimepiride pioglitazone sitagliptin linagliptin saxagliptin alogliptin
        empagliflozin dapagliflozin canagliflozin liraglutide semaglutide dulaglutide exenatide tirzepatide
        insulin glargine detemir degludec lispro aspart glulisine levothyroxine liothyronine methimazole
        propylthiouracil prednisone prednisolone methylprednisolone hydrocortisone dexamethasone
        fludrocortisone alendronate risedronate ibandronate zoledronic denosumab calcitriol cholecalciferol
        ergocalciferol testosterone estradiol progesterone medroxyprogesterone norethindrone raloxifene
        cabergoline bromocriptine desmopressin octreotide
    """,
    "anti_infective": """
        amoxicillin ampicillin azithromycin cefazolin cefdinir cefepime cefpodoxime ceftriaxone cefuroxime
        cephalexin ciprofloxacin clarithromycin clavulanate clindamycin daptomycin doxycycline ertapenem
        erythromycin gentamicin imipenem levofloxacin linezolid meropenem metronidazole minocycline
        moxifloxacin nafcillin nitrofurantoin oxacillin penicillin piperacillin tazobactam rifampin
        sulfamethoxazole trimethoprim tobramycin vancomycin amikacin aztreonam ceftazidime cefoxitin
        tetracycline fosfomycin colistin acyclovir valacyclovir famciclovir ganciclovir valganciclovir
        oseltamivir remdesivir fluconazole itraconazole voriconazole posaconazole nystatin terbinafine
        micafungin caspofungin amphotericin isoniazid ethambutol pyrazinamide rifaximin ivermectin
        albendazole hydroxychloroquine chloroquine tenofovir emtricitabine dolutegravir bictegravir
        efavirenz lamivudine zidovudine abacavir raltegravir ritonavir darunavir sofosbuvir
    """,
    "gastrointestinal": """
        omeprazole esomeprazole lansoprazole pantoprazole rabeprazole famotidine ranitidine sucralfate
        ondansetron metoclopramide prochlorperazine promethazine docusate senna sennosides bisacodyl
        polyethylene lactulose loperamide dicyclomine mesalamine sulfasalazine budesonide ursodiol
        simethicone misoprostol pancrelipase methylnaltrexone linaclotide lubiprostone
    """,
    "pain_neuro_psych": """
        acetaminophen ibuprofen naproxen ketorolac celecoxib meloxicam diclofenac indomethacin morphine
        hydromorphone oxycodone hydrocodone fentanyl tramadol methadone buprenorphine codeine tapentadol
        naloxone naltrexone gabapentin pregabalin duloxetine amitriptyline nortriptyline cyclobenzaprine
        baclofen tizanidine methocarbamol carisoprodol lidocaine sumatriptan rizatriptan topiramate
        levetiracetam lamotrigine valproate divalproex phenytoin fosphenytoin carbamazepine oxcarbazepine
        lacosamide phenobarbital clonazepam lorazepam diazepam alprazolam midazolam temazepam zolpidem
        trazodone mirtazapine sertraline fluoxetine paroxetine citalopram escitalopram venlafaxine
        desvenlafaxine bupropion buspirone lithium quetiapine olanzapine risperidone aripiprazole haloperidol
        ziprasidone clozapine lurasidone donepezil memantine rivastigmine galantamine levodopa carbidopa
        pramipexole ropinirole amantadine benztropine hydroxyzine diphenhydramine methylphenidate
        amphetamine atomoxetine modafinil propofol ketamine dexmedetomidine
    """,
    "respiratory_allergy": """
        albuterol levalbuterol ipratropium tiotropium salmeterol formoterol fluticasone budesonide
        beclomethasone mometasone montelukast theophylline umeclidinium vilanterol cetirizine loratadine
        fexofenadine guaifenesin benzonatate dextromethorphan pseudoephedrine epinephrine
    """,
    "heme_onc_immuno": """
        methotrexate hydroxyurea tamoxifen anastrozole letrozole exemestane cyclophosphamide doxorubicin
        cisplatin carboplatin paclitaxel docetaxel gemcitabine fluorouracil capecitabine oxaliplatin
        rituximab trastuzumab bevacizumab pembrolizumab nivolumab imatinib ibrutinib lenalidomide
        bortezomib tacrolimus cyclosporine mycophenolate azathioprine sirolimus everolimus adalimumab
        infliximab etanercept ustekinumab tofacitinib filgrastim epoetin darbepoetin ferrous iron
        folic cyanocobalamin vitamin thiamine pyridoxine potassium magnesium calcium sodium bicarbonate
        allopurinol febuxostat colchicine probenecid tranexamic phytonadione protamine
    """,
    "urology_misc": """
        finasteride dutasteride oxybutynin tolterodine solifenacin mirabegron sildenafil tadalafil
        phenazopyridine bethanechol sevelamer calcium cinacalcet patiromer
    """,
    "skin_muscle": """
        triamcinolone mupirocin clobetasol ketoconazole orphenadrine
    """,
    # Every word written right before a dose in the 1,388 shared notes that was missing here (a scan made
    # for the hand-labelled claim audit: a drug the lexicon lacks cannot be grounded in the note at all).
    "brands_in_shared_notes": """
        brilinta aldactone bumex cialis flexeril naprosyn ultram mobic cardura flomax carafate norflex
        micronase levothroid benicar versed aciphex combivent lortab trizivir
    """,
    "brands": """
        lasix coumadin eliquis xarelto plavix lipitor crestor zocor norvasc toprol lopressor coreg
        zestril prinivil cozaar diovan entresto lantus humalog novolog levemir tresiba ozempic trulicity
        jardiance farxiga januvia glucophage synthroid tylenol motrin advil aleve toradol percocet norco
        vicodin dilaudid neurontin lyrica zoloft prozac lexapro celexa wellbutrin xanax ativan valium
        klonopin ambien seroquel zyprexa risperdal haldol abilify keppra lamictal depakote dilantin
        tegretol zofran reglan protonix nexium prilosec pepcid colace senokot miralax dulcolax flagyl
        cipro levaquin augmentin keflex bactrim zithromax rocephin vanco albuterol proventil ventolin
        spiriva advair symbicort singulair flonase zyrtec claritin allegra benadryl prednisone medrol
        decadron solumedrol humira remicade enbrel keytruda
    """,
    "otc_brands": """
        robitussin mucinex delsym sudafed dayquil nyquil tylenol excedrin bayer ecotrin aleve midol
        pepto imodium tums rolaids maalox mylanta zantac gaviscon dramamine bonine unisom zzzquil
        flonase nasacort afrin claritin xyzal voltaren icyhot lotrimin lamisil neosporin bacitracin
        cortaid metamucil citrucel fibercon benefiber
    """,
}

DRUG_NAMES: frozenset[str] = frozenset(word for block in _BY_CLASS.values() for word in block.split())
"""Lower-case single words. Combinations ("amoxicillin-clavulanate") are looked up part by part."""

BRAND_GENERIC: dict[str, str] = {
    "tylenol": "acetaminophen", "motrin": "ibuprofen", "advil": "ibuprofen", "aleve": "naproxen",
    "lasix": "furosemide", "coumadin": "warfarin", "eliquis": "apixaban", "xarelto": "rivaroxaban",
    "plavix": "clopidogrel", "lipitor": "atorvastatin", "crestor": "rosuvastatin", "zocor": "simvastatin",
    "norvasc": "amlodipine", "toprol": "metoprolol", "lopressor": "metoprolol", "coreg": "carvedilol",
    "zestril": "lisinopril", "prinivil": "lisinopril", "cozaar": "losartan", "diovan": "valsartan",
    "glucophage": "metformin", "synthroid": "levothyroxine", "lantus": "glargine", "januvia": "sitagliptin",
    "jardiance": "empagliflozin", "farxiga": "dapagliflozin", "ozempic": "semaglutide",
    "neurontin": "gabapentin", "lyrica": "pregabalin", "zoloft": "sertraline", "prozac": "fluoxetine",
    "lexapro": "escitalopram", "celexa": "citalopram", "wellbutrin": "bupropion", "xanax": "alprazolam",
    "ativan": "lorazepam", "valium": "diazepam", "klonopin": "clonazepam", "ambien": "zolpidem",
    "seroquel": "quetiapine", "zofran": "ondansetron", "reglan": "metoclopramide", "protonix": "pantoprazole",
    "nexium": "esomeprazole", "prilosec": "omeprazole", "pepcid": "famotidine", "colace": "docusate",
    "flagyl": "metronidazole", "cipro": "ciprofloxacin", "levaquin": "levofloxacin", "keflex": "cephalexin",
    "zithromax": "azithromycin", "rocephin": "ceftriaxone", "ventolin": "albuterol", "proventil": "albuterol",
    "singulair": "montelukast", "zyrtec": "cetirizine", "claritin": "loratadine", "allegra": "fexofenadine",
    "benadryl": "diphenhydramine", "robitussin": "guaifenesin", "mucinex": "guaifenesin",
    "sudafed": "pseudoephedrine", "imodium": "loperamide", "flonase": "fluticasone", "medrol": "methylprednisolone",
    "keppra": "levetiracetam", "lamictal": "lamotrigine", "depakote": "divalproex", "dilantin": "phenytoin",
    "tegretol": "carbamazepine", "humira": "adalimumab", "voltaren": "diclofenac", "toradol": "ketorolac",
    "brilinta": "ticagrelor", "aldactone": "spironolactone", "bumex": "bumetanide", "cialis": "tadalafil",
    "flexeril": "cyclobenzaprine", "naprosyn": "naproxen", "ultram": "tramadol", "mobic": "meloxicam",
    "cardura": "doxazosin", "flomax": "tamsulosin", "carafate": "sucralfate", "norflex": "orphenadrine",
    "micronase": "glyburide", "levothroid": "levothyroxine", "benicar": "olmesartan", "versed": "midazolam",
    "aciphex": "rabeprazole",
}  # fmt: skip
"""Brand -> generic for the brands above whose single generic is in the lexicon (combinations such as
Combivent, Lortab and Trizivir are drugs without a mapping). Grounding names the
mapping when it uses one ("Tylenol (acetaminophen)"), so a reader sees that the note said the other name."""

NOT_DRUGS: frozenset[str] = frozenset({"vitamin", "iron", "potassium", "magnesium", "calcium", "sodium", "folic"})
"""Words in the lexicon only so that a supplement is checked when it is named with a dose; alone they are
too common in notes ("sodium 138", "iron studies") to flag as a drug."""


def generic_of(word: str) -> str:
    """The generic name a brand stands for (lower case), or the word itself, lower case."""
    w = word.lower()
    return BRAND_GENERIC.get(w, w)


def is_drug(word: str) -> bool:
    w = word.lower()
    return w in DRUG_NAMES and w not in NOT_DRUGS
